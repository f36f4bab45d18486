"""In-process DuckDB connections, one per step, with bounded memory and spill space."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

from indices.core import leftovers, storage

MEMORY_LIMIT = os.environ.get("INDICES_DUCKDB_MEMORY", "2GB")


def connect(spill_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory connection; large intermediates spill to `spill_dir` (local), where
    what dead runs left (spill folders, temporary copies) is removed first. It reads the object
    stores in use through their fsspec filesystems (see `indices.core.storage`)."""
    if spill_dir is not None:
        with storage.writing(spill_dir):
            Path(spill_dir).mkdir(parents=True, exist_ok=True)
        leftovers.sweep(Path(spill_dir))  # everything in it is temporary, named after its owner
    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "preserve_insertion_order": True})
    register(con)
    if spill_dir is not None:
        # A folder of its own: connections of runs going at once never share spill files. DuckDB
        # creates it, and removes it on close.
        own = Path(spill_dir) / f"duckdb-{leftovers.owner_tag()}"
        con.execute(f"SET temp_directory = {sql_str(own)}")  # a setting takes no parameter
    return con


def register(con: duckdb.DuckDBPyConnection) -> None:
    """Let a connection read `s3://...` (or any other object-store URL in use) through fsspec."""
    for fs in storage.remote_filesystems():
        con.register_filesystem(fs)


def sql_str(value: object) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


class Params(dict):
    """The bound parameters of one statement, by name: `params.bind(name, value)` adds a value
    and gives its placeholder, `$name`, so values reach DuckDB bound, never pasted into the SQL.
    A name binds one value."""

    def bind(self, name: str, value: object) -> str:
        if name in self and self[name] != value:
            raise ValueError(f"parameter ${name} bound to two values")
        self[name] = value
        return f"${name}"


def copy_to_parquet(
    con: duckdb.DuckDBPyConnection,
    query: str,
    path: storage.Location,
    scratch: Path | None = None,
    params: dict | None = None,
) -> int:
    """Write a query (with its bound `params`) to Parquet atomically: to a local temporary file
    (beside the target when it is local, else in `scratch`), then renamed or uploaded into
    place; the rows written. A folder that cannot be written is `storage.CannotWrite`, and the
    temporary file is removed."""
    if storage.is_url(path):
        tmp = storage.local_temp(scratch or storage.system_temp(), ".parquet")
    else:
        with storage.writing(Path(path).parent):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        leftovers.sweep_beside(Path(path))
        tmp = Path(path).with_name(f".{Path(path).name}.{leftovers.owner_tag()}.tmp")
    try:
        with storage.writing(tmp.parent):
            con.execute(
                f"COPY ({query}) TO $target (FORMAT parquet, COMPRESSION zstd, "
                "ROW_GROUP_SIZE 122880)",
                {**(params or {}), "target": str(tmp)},
            )
        rows = con.execute("SELECT count(*) FROM read_parquet($p)", {"p": str(tmp)}).fetchone()[0]
        storage.put(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


def write_json_atomic(path: storage.Location, payload: object) -> None:
    """Write JSON whole: beside, then renamed over the target (one upload on an object store)."""
    storage.write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def query_rows(query: str, parameters: dict | None = None, lookup: bool = False) -> list[tuple]:
    """Run one read-only query, with its parameters, on a fresh connection (with the view
    `lsoa_lookup` when `lookup`); all its rows."""
    from indices.core.reference import load_lsoa_lookup

    con = connect()
    try:
        if lookup:
            load_lsoa_lookup(con)
        return con.execute(query, parameters or {}).fetchall()
    finally:
        con.close()
