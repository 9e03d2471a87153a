"""Operational tables: job runs and (later) ingest reports."""
