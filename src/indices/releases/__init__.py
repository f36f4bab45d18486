"""Releases: immutable, versioned, audited datasets, their catalog and lineage."""
