"""Helpers shared by test modules: data and scores built the same way everywhere."""
