"""Publishing: immutable, versioned releases with a manifest, and the analysts' DuckDB catalog.

A release is `<publish-dir>/<dataset>/<version>/` holding `data.parquet` and `manifest.json`,
and it is visible once its pointer `<publish-dir>/<dataset>/_releases/<version>.json` (a copy of
the manifest) exists. Write, audit, publish: the release is written to a local staging folder,
audited, moved into place (renamed locally, uploaded to an object store), and only then is its
pointer written, in one atomic step (a rename, or one PUT), so a killed run leaves at worst a
folder no pointer names, which nothing lists. The publish folder may be local or an object-store
URL (`indices.storage`): one code path. A release never changes; an unchanged rerun publishes
nothing.

The pointers are the truth; `catalog.duckdb` is derived from them. Every publish call, one that
publishes nothing too, compares the catalog's `releases` table with the pointers and rebuilds it
when they differ (after a run killed between its pointer and its catalog, say). A catalog is
built to a temporary file, checked (every release a row and a view, every view read back with
its manifest's row count), and only then renamed over the old one: a failed build (disk full,
no permission) keeps the old catalog. Under the publish lock, what dead publishers left
(staging folders, catalog temporary files) is removed first (`clear_leftovers`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import indices
from indices import leftovers, storage
from indices.duck import ident, register, sql_str
from indices.reference import file_sha256
from indices.storage import Location

DATA_FILE = "data.parquet"
MANIFEST = "manifest.json"
CATALOG = "catalog.duckdb"
STAGING = ".staging"
RELEASES = "_releases"  # a release is visible iff its pointer `_releases/<version>.json` exists
LOCK = ".publish.lock"
VERSION = re.compile(r"v\d{6}")
# Columns that identify a person: none may reach a published table.
PERSON_COLUMNS = frozenset({"person_id", "nhs_number", "pseudonym", "date_of_birth"})


class AuditFailed(Exception):
    """A staged release failed its audit and was not published."""


class CatalogError(Exception):
    """A rebuilt catalog failed its check against the pointers; the previous one is kept."""


@dataclass(frozen=True)
class Release:
    dataset: str
    version: str
    path: Location
    published: bool  # False when an identical release already existed
    manifest: dict

    @property
    def data_path(self) -> Location:
        return storage.join(self.path, DATA_FILE)

    @property
    def manifest_path(self) -> Location:
        return storage.join(self.path, MANIFEST)


def version_name(number: int) -> str:
    """Versions are `v000001`, `v000002`, ...: they sort in publication order."""
    return f"v{number:06d}"


def pointer_path(publish_dir: Location, dataset: str, version: str) -> Location:
    return storage.join(publish_dir, dataset, RELEASES, f"{version}.json")


def staging_root(publish_dir: Location) -> Path:
    """Where releases and catalogs are written before they are moved into place: the publish
    folder's `.staging` (a rename away), or for an object store a local temporary folder."""
    if storage.is_url(publish_dir):
        return Path(tempfile.gettempdir()) / "indices-staging"
    return Path(publish_dir) / STAGING


def clear_leftovers(publish_dir: Location) -> list[str]:
    """Remove what dead publishers left: staging folders, catalog temporary files and their
    write-ahead logs, temporary pointer files; never what a live publisher is writing (see
    `leftovers.sweep`). Called under the publish lock. The names removed."""
    removed = leftovers.sweep(staging_root(publish_dir))
    if not storage.is_url(publish_dir):  # an object store's temporary files are local, staged
        removed += leftovers.sweep(Path(publish_dir), rf"\.{re.escape(CATALOG)}\..+\.tmp(\.wal)?")
        for dataset in storage.listdir(publish_dir):
            removed += leftovers.sweep(Path(publish_dir) / dataset / RELEASES, r"\..+\.tmp")
    return removed


def list_versions(publish_dir: Location, dataset: str) -> list[str]:
    """The visible releases of a dataset: those with a pointer, in publication order."""
    names = storage.listdir(storage.join(publish_dir, dataset, RELEASES))
    versions = (n.removesuffix(".json") for n in names if n.endswith(".json"))
    return sorted(v for v in versions if VERSION.fullmatch(v))


def release_folders(publish_dir: Location, dataset: str) -> list[str]:
    """Every version folder of a dataset, pointed or not (a killed run may leave one)."""
    return sorted(
        n for n in storage.listdir(storage.join(publish_dir, dataset)) if VERSION.fullmatch(n)
    )


def read_manifest(publish_dir: Location, dataset: str, version: str) -> dict:
    """A release's manifest, read from its pointer (a copy of `manifest.json`)."""
    return json.loads(storage.read_text(pointer_path(publish_dir, dataset, version)))


def publish_lock(publish_dir: Location):
    """One publisher at a time per local publish folder (choosing a version, rebuilding the
    catalog). An object store has no lock: a version is taken by creating its manifest only if
    absent, and its pointer likewise, so publishers never overwrite each other's release; the
    catalog is rebuilt by each, the last one wins."""
    if storage.is_url(publish_dir):
        return nullcontext()
    return _local_lock(Path(publish_dir))


@contextmanager
def _local_lock(publish_dir: Path) -> Iterator[None]:
    Path(publish_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(publish_dir) / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def code_version() -> str:
    """The package version and a hash of the library's source, so a code change is seen."""
    digest = hashlib.sha256()
    package = Path(indices.__file__).parent
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{indices.__version__}+{digest.hexdigest()[:12]}"


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(indices.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def write_parquet(table: pa.Table, path: Path, sort_by: list[str]) -> None:
    """Sorted by the area key, zstd, statistics on, row groups sized for selective reads."""
    if sort_by:
        table = table.sort_by([(column, "ascending") for column in sort_by])
    pq.write_table(
        table,
        path,
        compression="zstd",
        row_group_size=100_000,
        write_statistics=True,
    )


def input_record(path: Path, role: str) -> dict:
    """A raw extract or reference file that fed a release: its path and content hash."""
    return {"role": role, "path": str(path), "sha256": file_sha256(path)}


# Values that identify a person whatever their column is called: a pseudonym is 16 or more hex
# digits; an NHS number 10 digits, alone or as 3-3-4 with spaces or hyphens, or an integer of 10
# digits (no published count, rank or score comes near 10^9).
PSEUDONYM_LIKE = r"^[0-9A-Fa-f]{16,}$"
NHS_NUMBER_LIKE = r"^[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}$"
# An area release is keyed by ONS area codes: a column named as an area holds nothing else.
AREA_CODE = r"^[EWSN][0-9]{8}$"
AREA_COLUMN = re.compile(r"(lsoa|msoa|oa|lad|ltla|utla|ward|region|country|area)\d*_code")


def _count_matching(column: pa.ChunkedArray, pattern: str) -> int:
    text = column.cast(pa.large_string())
    return pc.sum(pc.match_substring_regex(text, pattern)).as_py() or 0


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def _ten_digit_numbers(column: pa.ChunkedArray) -> int:
    """Whole numbers of 10 digits, as integers or as floats (pandas makes an integer column
    with gaps a float one)."""
    kind = column.type
    if pa.types.is_unsigned_integer(kind) and kind.bit_width >= 32:
        values = column.cast(pa.uint64())
    elif pa.types.is_integer(kind) and kind.bit_width >= 32:
        values = pc.abs(column.cast(pa.int64()))
    elif pa.types.is_floating(kind):
        values = pc.abs(column.cast(pa.float64()))
        values = pc.if_else(pc.equal(values, pc.floor(values)), values, 0.0)
    else:
        return 0  # text, or too narrow to hold 10 digits
    low, high = pa.scalar(10**9, values.type), pa.scalar(10**10, values.type)
    inside = pc.and_(pc.greater_equal(values, low), pc.less(values, high))
    return pc.sum(inside).as_py() or 0


def person_value_problems(table: pa.Table) -> list[str]:
    """Columns holding values that look like pseudonyms or NHS numbers. The values themselves are
    never named: a message may not carry an NHS number."""
    problems = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if _is_text(column.type):
            found = {
                "pseudonyms (16 or more hex digits)": _count_matching(column, PSEUDONYM_LIKE),
                "NHS numbers (10 digits)": _count_matching(column, NHS_NUMBER_LIKE),
            }
        else:
            found = {"NHS numbers (10-digit numbers)": _ten_digit_numbers(column)}
        problems += [f"{name}: {n} value(s) look like {what}" for what, n in found.items() if n]
    return problems


def area_code_problems(table: pa.Table, columns: list[str]) -> list[str]:
    """Columns that should hold ONS area codes (e.g. E01000001) but hold something else; nulls
    pass (a total row has no area)."""
    problems = []
    for name in columns:
        column = table.column(name)
        present = column.length() - column.null_count
        codes = _count_matching(column, AREA_CODE) if _is_text(column.type) else 0
        if present - codes:
            problems.append(
                f"{name}: {present - codes} value(s) are not area codes (ONS, e.g. E01000001)"
            )
    return problems


def audit_table(table: pa.Table, count_columns: list[str], method: str = "rounding") -> list[str]:
    """The generic audit of any release: no person columns, no value that looks like a
    pseudonym or an NHS number in any column, only area codes in a column named as an area
    (`lsoa11_code`, `lad19_code`, `area_code` ...), and counts that the disclosure control
    `method` could have produced (see `indices.disclosure.is_publishable`). Returns the problems
    found."""
    from indices.disclosure import is_publishable

    problems = [f"person-level column {c!r}" for c in table.column_names if c in PERSON_COLUMNS]
    problems += person_value_problems(table)
    problems += area_code_problems(
        table, [c for c in table.column_names if AREA_COLUMN.fullmatch(c)]
    )
    for column in count_columns:
        bad = [v for v in table.column(column).to_pylist() if not is_publishable(v, method)]
        if bad:
            problems.append(
                f"{column}: {len(bad)} value(s) not disclosure controlled, e.g. {bad[0]}"
            )
    return problems


def publish_release(
    publish_dir: Path,
    dataset: str,
    table: pa.Table,
    *,
    description: str,
    column_descriptions: dict[str, str],
    sort_by: list[str],
    reference_date: date | None,
    inputs: list[dict],
    upstream: list[dict] | None = None,
    count_columns: list[str] | None = None,
    extra_audit: Callable[[pa.Table], list[str]] | None = None,
    extra_files: dict[str, bytes] | None = None,
    disclosure: dict | None = None,
    run_id: str | None = None,
) -> Release:
    """Write, audit, then publish one release of a dataset, or keep the current one if nothing
    that feeds it changed. `disclosure` (method, parameters, audit) goes into the manifest and
    its method decides which counts the audit accepts."""
    publish_dir = storage.coerce(publish_dir)
    remote = storage.is_url(publish_dir)
    scratch = staging_root(publish_dir)
    staging = scratch / f"{dataset}.{leftovers.owner_tag()}"  # its owner's: see clear_leftovers
    staged_in = scratch if remote else publish_dir  # the folder a failed write names
    try:
        with storage.writing(staged_in):
            staging.mkdir(parents=True)
            write_parquet(table, staging / DATA_FILE, sort_by)
        written = pq.read_table(staging / DATA_FILE)
        method = (disclosure or {}).get("method", "rounding")
        problems = audit_table(written, count_columns or [], method)
        if written.num_rows != table.num_rows:
            problems.append(f"wrote {written.num_rows} rows, expected {table.num_rows}")
        problems += extra_audit(written) if extra_audit else []
        if problems:
            raise AuditFailed(f"{dataset}: " + "; ".join(problems))

        data_hash = file_sha256(staging / DATA_FILE)
        files = [{"path": DATA_FILE, "sha256": data_hash, "rows": written.num_rows}]
        for name, content in sorted((extra_files or {}).items()):
            with storage.writing(staged_in):
                (staging / name).write_bytes(content)
            files.append({"path": name, "sha256": file_sha256(staging / name)})
        code = code_version()
        fingerprint = _fingerprint(data_hash, inputs, upstream or [], code, reference_date)
        manifest = {
            "dataset": dataset,
            "version": None,
            "description": description,
            "reference_date": reference_date.isoformat() if reference_date else None,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "row_count": written.num_rows,
            "key": sort_by,
            "schema": [
                {
                    "column": f.name,
                    "type": str(f.type),
                    "description": column_descriptions.get(f.name, ""),
                }
                for f in written.schema
            ],
            "files": files,
            "inputs": inputs,
            "upstream": upstream or [],
            "code_version": code,
            "package_version": indices.__version__,
            "git_commit": git_commit(),
            "run_id": run_id,
            "fingerprint": fingerprint,
        }
        if disclosure is not None:
            manifest["disclosure"] = disclosure
        with storage.writing(publish_dir), publish_lock(publish_dir):
            clear_leftovers(publish_dir)
            versions = list_versions(publish_dir, dataset)
            manifest["changed_inputs"] = None
            if versions:
                latest = read_manifest(publish_dir, dataset, versions[-1])
                if latest.get("fingerprint") == fingerprint:
                    ensure_catalog(publish_dir)  # a run killed after its pointer left it behind
                    path = storage.join(publish_dir, dataset, versions[-1])
                    return Release(dataset, versions[-1], path, False, latest)
                from indices.lineage import changed_inputs

                manifest["changed_inputs"] = changed_inputs(latest, inputs)
            # The next number after every release and every folder a killed run left.
            taken = versions + release_folders(publish_dir, dataset)
            number = max(int(v[1:]) for v in taken) + 1 if taken else 1
            while True:
                version = version_name(number)
                manifest["version"] = version
                text = json.dumps(manifest, indent=2) + "\n"
                target = storage.join(publish_dir, dataset, version)
                if not remote or _claim(storage.join(target, MANIFEST), text):
                    break
                number += 1  # another publisher took this version meanwhile
            if remote:
                storage.put(staging, target)  # the data and extra files; the manifest is there
            else:
                (staging / MANIFEST).write_text(text)
                for item in staging.iterdir():
                    item.chmod(0o444)  # a release never changes: its files are read-only
                target.parent.mkdir(parents=True, exist_ok=True)
                move_into_place(staging, target)
            try:  # last: the release becomes visible
                storage.write_text(pointer_path(publish_dir, dataset, version), text, True)
            except FileExistsError:
                raise ReleaseExists(f"{dataset} {version} is already published") from None
            rebuild_catalog(publish_dir)
        return Release(dataset, version, target, True, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _claim(manifest_path: Location, text: str) -> bool:
    """Take a version on an object store, which has no lock: its manifest is created only if
    absent (a conditional PUT on S3); False when another publisher has it."""
    try:
        storage.write_text(manifest_path, text, exclusive=True)
    except FileExistsError:
        return False
    return True


class ReleaseExists(Exception):
    """Publishing over an existing release is refused: a release never changes once visible."""


def move_into_place(staging: Path, target: Path) -> None:
    """Make a staged release visible in one atomic step, refusing to replace an existing one.
    rename(2) replaces an empty folder silently, so an existing target is checked first; the
    lock held by the caller keeps the check and the rename together."""
    if target.exists():
        raise ReleaseExists(f"{target} already exists; releases are never overwritten")
    os.rename(staging, target)


def _fingerprint(
    data_hash: str, inputs: list[dict], upstream: list[dict], code: str, reference_date: date | None
) -> str:
    """What makes a release: its data, every input's hash, its upstream releases and the code."""
    payload = {
        "data": data_hash,
        "inputs": sorted((i["role"], i["sha256"]) for i in inputs),
        "upstream": sorted((u["dataset"], u["version"]) for u in upstream),
        "code": code,
        "reference_date": reference_date.isoformat() if reference_date else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def list_datasets(publish_dir: Location) -> list[str]:
    return sorted(_pointers(publish_dir))


def _pointers(publish_dir: Location) -> dict[str, list[str]]:
    """Every dataset with a release, and its versions: what the catalog must show."""
    found = {}
    for name in storage.listdir(publish_dir):
        if not name.startswith((".", "_")):
            versions = list_versions(publish_dir, name)
            if versions:
                found[name] = versions
    return found


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
    pointers = _pointers(publish_dir) if pointers is None else pointers
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
    pointers = _pointers(publish_dir)
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
    pointers = _pointers(publish_dir) if pointers is None else pointers
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
