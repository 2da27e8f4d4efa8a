"""The data layer: what an offender assessment is and how data is checked.

Modules: :mod:`data.schema` (the single source of truth for fields, types,
ranges and the HTTP contract), :mod:`data.validation` (checks a table against
it), :mod:`data.loaders` (reads and writes CSV / Parquet),
:mod:`data.synthetic` (the synthetic IOM cohort that lets the whole pipeline
run with no outside data), :mod:`data.errors` (domain exceptions).
"""
