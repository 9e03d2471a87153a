"""Audit layer: the append-only, hash-chained audit log."""
