"""Fixtures for a real Prefect server on loopback and the served deployments (filled in by the foundation work)."""
