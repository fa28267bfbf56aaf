"""Corpus building: Reddit links -> fetched HTML -> extracted, filtered, de-duplicated Parquet shards.

A plain library: no Prefect imports here; `flows/` orchestrates it.
"""
