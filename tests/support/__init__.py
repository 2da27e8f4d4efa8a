"""Helpers shared by test modules: golden scores, service fixtures (never imported by benchmarks)."""
