"""Data-quality layer: results of checks over the lakehouse's tables."""
