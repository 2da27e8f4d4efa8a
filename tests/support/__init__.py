"""Helpers shared by test modules: golden scores, service fixtures; benchmarks never import them."""
