"""Helpers shared by test modules (instead of importing them from conftest files or other tests)."""
