"""Prefect flows: thin orchestration over the corpus, modeling and evaluation libraries."""
