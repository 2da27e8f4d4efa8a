"""Training jobs, their named steps, reports, monitoring and the ``desist`` command line.

Each job is one function, ``job(config, *, tracker) -> Result``, taking a
frozen config; :mod:`pipeline.cli` only parses arguments, calls a job and
prints its summary. Modules, by concept:

- jobs and their steps: :mod:`pipeline.train_risk` (with
  :mod:`~pipeline.risk_families`, :mod:`~pipeline.risk_audit`,
  :mod:`~pipeline.risk_record`, :mod:`~pipeline.cross_validation`,
  :mod:`~pipeline.comparison`), :mod:`pipeline.train_pathways` (with
  :mod:`~pipeline.pathway_evaluation`, :mod:`~pipeline.pathway_plots`),
  :mod:`pipeline.batch_scoring`, :mod:`pipeline.registry` (versions and the
  gated ``champion``); shared: :mod:`pipeline.jobs`, :mod:`pipeline.datasets`,
  :mod:`pipeline.config`, :mod:`pipeline.tracking`;
- figures, computed apart from rendering: :mod:`pipeline.evaluation`,
  :mod:`pipeline.calibration_metrics`, :mod:`pipeline.calibration_checks`,
  :mod:`pipeline.bootstrap`, :mod:`pipeline.fairness`;
- rendering: :mod:`pipeline.plots`, :mod:`pipeline.fairness_plots`,
  :mod:`pipeline.fairness_report`, :mod:`pipeline.model_card`,
  :mod:`pipeline.document`, :mod:`pipeline.html`, :mod:`pipeline.names`;
- monitoring: :mod:`pipeline.monitoring`, :mod:`pipeline.monitoring_checks`,
  :mod:`pipeline.monitoring_config`, :mod:`pipeline.monitoring_report`,
  :mod:`pipeline.drift`, :mod:`pipeline.deployment_simulation`.

The module map is ``docs/architecture.md``.
"""
