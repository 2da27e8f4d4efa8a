"""Model definitions for risk scoring and pathway recommendation, and the train-to-serve contract.

Scikit-learn estimators and ``build_*`` functions that return one
``Pipeline`` (preprocessing + estimator), plus the explanation of a score as
per-feature contributions. Modules: :mod:`models.risk` (the risk families and
their calibration), :mod:`models.scorecard`, :mod:`models.average` (the
blend), :mod:`models.log_odds` (what log-odds classifiers share),
:mod:`models.calibration`, :mod:`models.encoding` (assessment table to
matrix), :mod:`models.bands`, :mod:`models.explain` (reasons for a score),
:mod:`models.attribution` (each estimator's attribution, ``FastExplainer``),
:mod:`models.tree_paths` (tree-path attributions of a booster),
:mod:`models.pathways` (the pathway-effect model), :mod:`models.pathway_estimates`
(its estimates and recommendations), :mod:`models.pathway_confidence` (their
confidence groups), :mod:`models.pathway_programmes` (referral columns, needs,
eligibility), :mod:`models.pathway_rules` (rule-based baselines), and the
package :mod:`models.contract`. The module map is ``docs/architecture.md``.
"""
