"""The service's endpoints, one router per resource.

Risk scores, pathway recommendations, practitioners' decisions, outcomes,
models, operations (health, readiness, metrics) and admin (reload). A route
parses what it needs, hands the work to the domain step (:mod:`serving.scoring`,
:mod:`serving.oversight`) and renders the answer.
"""
