"""The service's endpoints, one router per resource.

Risk scores, pathway recommendations, models, operations (health, readiness,
metrics) and admin (reload). A route parses what it needs, hands the work to
the domain step (:mod:`serving.scoring`) and renders the answer.
"""
