"""Training jobs and the ``desist`` command line.

Each job is one function, ``job(config, *, tracker) -> Result``, taking a
frozen config; :mod:`pipeline.cli` only parses arguments, calls a job and
prints its summary.
"""
