"""Helpers the test packages share (fixtures' building blocks, golden scores); no tests here."""
