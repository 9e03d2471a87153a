"""Bronze tables: one per source format, raw payload kept, lineage on every row."""
