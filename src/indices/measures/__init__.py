"""Person-level measures as at a reference date, computed in DuckDB over the conformed tables."""
