"""Tooling the benchmarks and the tests share: inputs, a registry to tamper with, live services.

Here rather than in ``tests/`` because benchmarks import nothing from the
tests; here rather than in ``serving/`` because it is measurement and fault
injection tooling that needs development-only packages (httpx, schemathesis,
hypothesis) and must not ship with the service. Tests import it; it imports
only the project's own packages.
"""
