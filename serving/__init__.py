"""The HTTP scoring service for case systems.

A FastAPI app that loads registered models, scores assessments, and records
every score in the audit log before it answers; it records practitioners'
decisions on those scores and people's outcomes the same way.
"""
