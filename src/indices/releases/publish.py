"""Publishing: immutable, versioned releases with a manifest, and the analysts' DuckDB catalog.

A release is `<publish-dir>/<dataset>/<version>/` holding `data.parquet` and `manifest.json`,
and it is visible once its pointer `<publish-dir>/<dataset>/_releases/<version>.json` (a copy of
the manifest) exists. Write, audit, publish: the release is written to a local staging folder,
audited, moved into place (renamed locally, uploaded to an object store), and only then is its
pointer written, in one atomic step (a rename, or one PUT), so a killed run leaves at worst a
folder no pointer names, which nothing lists. The publish folder may be local or an object-store
URL (`indices.core.storage`): one code path. A release never changes; an unchanged rerun publishes
nothing.
The catalog is derived from the pointers (`indices.releases.catalog`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import indices
from indices.core import leftovers, storage
from indices.core.published import (
    DATA_FILE,
    MANIFEST,
    clear_leftovers,
    list_versions,
    pointer_path,
    publish_lock,
    read_manifest,
    release_folders,
    staging_root,
    version_name,
)
from indices.core.reference import file_sha256
from indices.core.storage import Location
from indices.releases.audit import AuditFailed, audit_table
from indices.releases.catalog import ensure_catalog, rebuild_catalog


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


def changed_inputs(previous: dict, current_inputs: list[dict]) -> list[str]:
    """The inputs of a new release that differ from the previous release's: changed content,
    new, or gone (by role and file name, so a newer extract of a source shows as changed)."""

    def keyed(inputs: list[dict]) -> dict[tuple[str, str], str]:
        return {(i["role"], Path(i["path"]).name): i["sha256"] for i in inputs}

    before, after = keyed(previous.get("inputs", [])), keyed(current_inputs)
    changes = []
    for key in sorted(before.keys() | after.keys()):
        role, name = key
        if key not in before:
            changes.append(f"{role}: {name} (new)")
        elif key not in after:
            changes.append(f"{role}: {name} (no longer used)")
        elif before[key] != after[key]:
            changes.append(f"{role}: {name} (content changed)")
    return changes
