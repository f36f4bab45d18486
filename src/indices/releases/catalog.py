"""The analysts' DuckDB catalog, derived from the pointers.

The pointers are the truth; `catalog.duckdb` is derived from them. Every publish call, one that
publishes nothing too, compares the catalog's `releases` table with the pointers and rebuilds it
when they differ (after a run killed between its pointer and its catalog, say). A catalog is
built to a temporary file, checked (every release a row and a view, every view read back with
its manifest's row count), and only then renamed over the old one: a failed build (disk full,
no permission) keeps the old catalog.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

import duckdb

from indices.core import leftovers, storage
from indices.core.duck import ident, register, sql_str
from indices.core.published import (
    CATALOG,
    DATA_FILE,
    MANIFEST,
    clear_leftovers,
    publish_lock,
    read_manifest,
    released,
    staging_root,
)
from indices.core.storage import Location


class CatalogError(Exception):
    """A rebuilt catalog failed its check against the pointers; the previous one is kept."""


def _expected(publish_dir: Location, pointers: dict[str, list[str]]) -> tuple[set, set]:
    """The catalog's `releases` rows (dataset, version, is_latest, manifest_path) and views,
    for these pointers."""
    rows = {
        (d, v, v == versions[-1], str(storage.join(publish_dir, d, v, MANIFEST)))
        for d, versions in pointers.items()
        for v in versions
    }
    views = {f"{d}__{v}" for d, v, _, _ in rows} | set(pointers)
    return rows, views


def _catalog_state(con: duckdb.DuckDBPyConnection) -> tuple[set, set]:
    rows = con.execute("SELECT dataset, version, is_latest, manifest_path FROM releases").fetchall()
    views = con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
    return set(rows), {name for (name,) in views}


def _absolute(publish_dir: Location) -> Location:
    """The publish folder as the catalog names it: absolute, or a URL."""
    publish_dir = storage.coerce(publish_dir)
    return publish_dir if storage.is_url(publish_dir) else publish_dir.resolve()


def catalog_agrees(publish_dir: Location, pointers: dict[str, list[str]] | None = None) -> bool:
    """Whether `catalog.duckdb` lists exactly the releases the pointers name, each latest one
    marked and at this folder's path, with their views (a missing, unreadable or empty catalog
    does not)."""
    publish_dir = _absolute(publish_dir)
    pointers = released(publish_dir) if pointers is None else pointers
    target = storage.join(publish_dir, CATALOG)
    local = Path(target) if not storage.is_url(target) else None
    try:
        if local is None:
            local = storage.local_temp(staging_root(publish_dir), f".{CATALOG}")
            with storage.writing(local.parent):
                storage.filesystem(target).get_file(str(target), str(local))
        elif Path(f"{target}.wal").exists():  # a log of another catalog: it must go
            return False
        con = duckdb.connect(str(local), read_only=True)
        try:
            return _catalog_state(con) == _expected(publish_dir, pointers)
        finally:
            con.close()
    except (FileNotFoundError, duckdb.Error):
        return False
    finally:
        if local is not None and str(local) != str(target):
            local.unlink(missing_ok=True)


def ensure_catalog(publish_dir: Location, force: bool = False) -> bool:
    """Rebuild `catalog.duckdb` when it disagrees with the pointers (always, with `force`);
    whether it was rebuilt. Call under the publish lock."""
    pointers = released(publish_dir)
    if not force and catalog_agrees(publish_dir, pointers):
        return False
    rebuild_catalog(publish_dir, pointers)
    return True


def refresh_catalog(publish_dir: Location, force: bool = False) -> bool:
    """`ensure_catalog` under the publish lock, after clearing what dead runs left: for the
    operator's `indices catalog`."""
    publish_dir = storage.coerce(publish_dir)
    with storage.writing(publish_dir), publish_lock(publish_dir):
        clear_leftovers(publish_dir)
        return ensure_catalog(publish_dir, force)


def rebuild_catalog(
    publish_dir: Location, pointers: dict[str, list[str]] | None = None
) -> Location:
    """Rebuild `catalog.duckdb` from the pointers: a view per dataset (its latest release), a
    view per release (`<dataset>__<version>`) and a `releases` table. Paths are absolute (or
    URLs), so the catalog answers from any working directory. Built in a temporary file,
    checked against the pointers and manifests, then renamed over (or uploaded over) the old
    one; when building or checking fails the old one is kept (`storage.CannotWrite` for a
    folder that cannot be written, else `CatalogError`) and the temporary file removed."""
    publish_dir = _absolute(publish_dir)
    remote = storage.is_url(publish_dir)
    pointers = released(publish_dir) if pointers is None else pointers
    manifests = {
        (d, v): read_manifest(publish_dir, d, v)
        for d, versions in pointers.items()
        for v in versions
    }
    folder = staging_root(publish_dir) if remote else publish_dir
    tmp = folder / f".{CATALOG}.{leftovers.owner_tag()}.tmp"  # its owner's: see clear_leftovers
    wal = Path(f"{tmp}.wal")
    target = storage.join(publish_dir, CATALOG)
    try:
        try:
            with storage.writing(folder):
                folder.mkdir(parents=True, exist_ok=True)
                _write_catalog(tmp, publish_dir, pointers, manifests)
        except duckdb.Error as error:  # not a failed write: a release's data cannot be read
            raise CatalogError(f"{target} not replaced: {_first_line(error)}") from None
        problem = _catalog_problem(tmp, publish_dir, pointers, manifests)
        if problem:
            raise CatalogError(f"{target} not replaced: {problem}")
        if not remote:
            # A log left beside the old catalog would be replayed into the new one.
            Path(f"{target}.wal").unlink(missing_ok=True)
        storage.put(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
        wal.unlink(missing_ok=True)
    return target


def _write_catalog(
    path: Path, publish_dir: Location, pointers: dict[str, list[str]], manifests: dict
) -> None:
    con = duckdb.connect(str(path))
    register(con)
    try:
        con.execute(
            "CREATE TABLE releases (dataset VARCHAR, version VARCHAR, reference_date DATE, "
            "created TIMESTAMPTZ, row_count BIGINT, is_latest BOOLEAN, manifest_path VARCHAR)"
        )
        for dataset, versions in sorted(pointers.items()):
            for version in versions:
                manifest = manifests[dataset, version]
                # A view keeps its path, and DDL takes no parameters: the path is quoted.
                data = sql_str(storage.join(publish_dir, dataset, version, DATA_FILE))
                con.execute(
                    f"CREATE VIEW {ident(f'{dataset}__{version}')} AS "
                    f"SELECT * FROM read_parquet({data})"
                )
                con.execute(
                    "INSERT INTO releases VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        dataset,
                        version,
                        manifest.get("reference_date"),
                        manifest["created"],
                        manifest["row_count"],
                        version == versions[-1],
                        str(storage.join(publish_dir, dataset, version, MANIFEST)),
                    ],
                )
            latest = sql_str(storage.join(publish_dir, dataset, versions[-1], DATA_FILE))
            con.execute(f"CREATE VIEW {ident(dataset)} AS SELECT * FROM read_parquet({latest})")
        # Written out now, so a full disk fails here rather than leaving the tables in a log.
        con.execute("CHECKPOINT")
    finally:
        with suppress(duckdb.Error):  # after a failed checkpoint DuckDB refuses to go on
            con.close()


def _catalog_problem(
    path: Path, publish_dir: Location, pointers: dict[str, list[str]], manifests: dict
) -> str | None:
    """What is wrong with a freshly built catalog, read back as an analyst would: a release
    missing, a view unreadable or not of its manifest's row count; None when nothing is."""
    if Path(f"{path}.wal").exists():
        return "its write-ahead log was not checkpointed"
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as error:
        return f"it cannot be opened: {_first_line(error)}"
    register(con)
    try:
        if _catalog_state(con) != _expected(publish_dir, pointers):
            return "it does not list every release the pointers name"
        for dataset, versions in pointers.items():
            for version in versions:
                views = [f"{dataset}__{version}"] + ([dataset] if version == versions[-1] else [])
                expected = manifests[dataset, version]["row_count"]
                for view in views:
                    rows = con.execute(f"SELECT count(*) FROM {ident(view)}").fetchone()[0]
                    if rows != expected:
                        return f"view {view} has {rows} rows, its manifest says {expected}"
    except duckdb.Error as error:
        return f"it cannot be read: {_first_line(error)}"
    finally:
        con.close()
    return None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
