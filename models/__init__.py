"""Model definitions for risk scoring and pathway recommendation.

Scikit-learn estimators and ``build_*`` functions that return one
``Pipeline`` (preprocessing + estimator), plus the explanation of a score as
per-feature contributions.
"""
