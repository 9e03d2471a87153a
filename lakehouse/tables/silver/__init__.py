"""Silver: one conformed, coded clinical model from every source (one row per source record)."""
