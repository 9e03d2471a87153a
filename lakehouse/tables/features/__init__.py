"""ML feature tables over the OMOP gold layer (``features.*``; docs/features.md)."""
