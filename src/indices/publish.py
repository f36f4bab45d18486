"""Publishing: immutable, versioned releases with a manifest, and the analysts' DuckDB catalog.

A release is `<publish-dir>/<dataset>/<version>/` holding `data.parquet` and `manifest.json`.
Write, audit, publish: the release is written to a staging folder, audited, and only then renamed
into place in one atomic step, so a killed run leaves no partial release visible. A release never
changes; an unchanged rerun publishes nothing. `catalog.duckdb` is rebuilt after every publish and
replaced atomically.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

import indices
from indices.duck import ident, sql_str
from indices.reference import file_sha256

DATA_FILE = "data.parquet"
MANIFEST = "manifest.json"
CATALOG = "catalog.duckdb"
STAGING = ".staging"
LOCK = ".publish.lock"
# Columns that identify a person: none may reach a published table.
PERSON_COLUMNS = frozenset({"person_id", "nhs_number", "pseudonym", "date_of_birth"})


class AuditFailed(Exception):
    """A staged release failed its audit and was not published."""


@dataclass(frozen=True)
class Release:
    dataset: str
    version: str
    path: Path
    published: bool  # False when an identical release already existed
    manifest: dict

    @property
    def data_path(self) -> Path:
        return self.path / DATA_FILE


def version_name(number: int) -> str:
    """Versions are `v000001`, `v000002`, ...: they sort in publication order."""
    return f"v{number:06d}"


def list_versions(publish_dir: Path, dataset: str) -> list[str]:
    folder = Path(publish_dir) / dataset
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith("v"))


def read_manifest(publish_dir: Path, dataset: str, version: str) -> dict:
    return json.loads((Path(publish_dir) / dataset / version / MANIFEST).read_text())


@contextmanager
def publish_lock(publish_dir: Path) -> Iterator[None]:
    """One publisher at a time per publish folder (choosing a version, rebuilding the catalog)."""
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


def audit_table(table: pa.Table, count_columns: list[str]) -> list[str]:
    """The generic audit of any release: no person columns, and counts that passed disclosure
    control. Returns the problems found."""
    from indices.disclosure import is_publishable

    problems = [f"person-level column {c!r}" for c in table.column_names if c in PERSON_COLUMNS]
    for column in count_columns:
        bad = [v for v in table.column(column).to_pylist() if not is_publishable(v)]
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
    run_id: str | None = None,
) -> Release:
    """Write, audit, then publish one release of a dataset, or keep the current one if nothing
    that feeds it changed."""
    publish_dir = Path(publish_dir)
    staging = publish_dir / STAGING / f"{dataset}-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        write_parquet(table, staging / DATA_FILE, sort_by)
        written = pq.read_table(staging / DATA_FILE)
        problems = audit_table(written, count_columns or [])
        if written.num_rows != table.num_rows:
            problems.append(f"wrote {written.num_rows} rows, expected {table.num_rows}")
        problems += extra_audit(written) if extra_audit else []
        if problems:
            raise AuditFailed(f"{dataset}: " + "; ".join(problems))

        data_hash = file_sha256(staging / DATA_FILE)
        files = [{"path": DATA_FILE, "sha256": data_hash, "rows": written.num_rows}]
        for name, content in sorted((extra_files or {}).items()):
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
        with publish_lock(publish_dir):
            versions = list_versions(publish_dir, dataset)
            manifest["changed_inputs"] = None
            if versions:
                latest = read_manifest(publish_dir, dataset, versions[-1])
                if latest.get("fingerprint") == fingerprint:
                    path = publish_dir / dataset / versions[-1]
                    return Release(dataset, versions[-1], path, False, latest)
                from indices.lineage import changed_inputs

                manifest["changed_inputs"] = changed_inputs(latest, inputs)
            version = version_name(int(versions[-1][1:]) + 1 if versions else 1)
            manifest["version"] = version
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            for item in staging.iterdir():
                item.chmod(0o444)  # a release never changes: its files are read-only
            target = publish_dir / dataset / version
            target.parent.mkdir(parents=True, exist_ok=True)
            move_into_place(staging, target)
            rebuild_catalog(publish_dir)
        return Release(dataset, version, target, True, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


def list_datasets(publish_dir: Path) -> list[str]:
    publish_dir = Path(publish_dir)
    if not publish_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in publish_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".") and list_versions(publish_dir, p.name)
    )


def rebuild_catalog(publish_dir: Path) -> Path:
    """Rebuild `catalog.duckdb`: a view per dataset (its latest release), a view per release
    (`<dataset>__<version>`) and a `releases` table. Paths are absolute, so the catalog answers
    from any working directory. Written beside, then renamed over the old one."""
    publish_dir = Path(publish_dir).resolve()
    target = publish_dir / CATALOG
    tmp = publish_dir / f".{CATALOG}.{uuid.uuid4().hex}.tmp"
    con = duckdb.connect(str(tmp))
    try:
        con.execute(
            "CREATE TABLE releases (dataset VARCHAR, version VARCHAR, reference_date DATE, "
            "created TIMESTAMPTZ, row_count BIGINT, is_latest BOOLEAN, manifest_path VARCHAR)"
        )
        for dataset in list_datasets(publish_dir):
            versions = list_versions(publish_dir, dataset)
            for version in versions:
                manifest = read_manifest(publish_dir, dataset, version)
                data = sql_str(publish_dir / dataset / version / DATA_FILE)
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
                        str(publish_dir / dataset / version / MANIFEST),
                    ],
                )
            latest = sql_str(publish_dir / dataset / versions[-1] / DATA_FILE)
            con.execute(f"CREATE VIEW {ident(dataset)} AS SELECT * FROM read_parquet({latest})")
    finally:
        con.close()
    os.replace(tmp, target)
    return target
