"""In-process DuckDB connections, one per step, with bounded memory and spill space."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

MEMORY_LIMIT = os.environ.get("INDICES_DUCKDB_MEMORY", "2GB")


def connect(spill_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory connection; large intermediates spill to `spill_dir`."""
    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "preserve_insertion_order": True})
    if spill_dir is not None:
        Path(spill_dir).mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = {sql_str(spill_dir)}")
    return con


def sql_str(value: object) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def copy_to_parquet(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> int:
    """Write a query to Parquet atomically (temporary file, then rename); the rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    con.execute(
        f"COPY ({query}) TO {sql_str(tmp)} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
    )
    os.replace(tmp, path)
    return con.execute(f"SELECT count(*) FROM read_parquet({sql_str(path)})").fetchone()[0]


def write_json_atomic(path: Path, payload: object) -> None:
    """Write JSON beside, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def query_rows(query: str) -> list[tuple]:
    """Run one read-only query on a fresh connection; all its rows."""
    con = connect()
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()
