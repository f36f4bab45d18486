"""The composite index engine: declarative specs, named swappable methods, every step kept."""
