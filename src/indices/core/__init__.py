"""Foundations every layer uses: settings, storage, DuckDB, reference data, and where things live."""
