"""The train-to-serve contract: what a registered model version carries, and how it crosses over.

A training job registers a version (:mod:`models.contract.register`) with the
tags described in :mod:`models.contract.tags`; the service and batch scoring
fetch it back verified (:mod:`models.contract.fetch`): its files must match
the digest recorded at registration and hold only the types desist itself
builds (:mod:`models.contract.artifact`) before anything is deserialised.
The errors of that crossing are in :mod:`models.contract.errors`.
"""
