"""What a release came from, what changed between releases, and removing old releases."""

from __future__ import annotations

import time
from pathlib import Path

from indices.core import leftovers, storage
from indices.core.duck import connect, ident
from indices.core.published import (
    DATA_FILE,
    clear_leftovers,
    list_versions,
    pointer_path,
    publish_lock,
    read_manifest,
    release_folders,
)
from indices.releases.catalog import rebuild_catalog


def resolve_version(publish_dir: Path, dataset: str, version: str | None = None) -> str:
    """The version asked for, or the latest; a clear error when there is none."""
    versions = list_versions(publish_dir, dataset)
    if not versions:
        raise ValueError(f"no releases of {dataset!r} in {publish_dir}")
    if version is None:
        return versions[-1]
    if version not in versions:
        raise ValueError(f"{dataset} has no release {version!r}; releases: {', '.join(versions)}")
    return version


def lineage_tree(publish_dir: Path, dataset: str, version: str | None = None) -> list[str]:
    """The tree of what a release came from, as indented lines: its upstream releases (each
    with its own inputs), then its raw extracts, reference files and spec, with hashes."""
    lines: list[str] = []

    def visit(name: str, ver: str, depth: int) -> None:
        manifest = read_manifest(publish_dir, name, ver)
        pad = "  " * depth
        lines.append(
            f"{pad}{name} {ver}  (reference {manifest['reference_date']}, "
            f"{manifest['row_count']} rows, run {manifest.get('run_id') or '-'}, "
            f"code {manifest['code_version']}, commit {(manifest.get('git_commit') or '-')[:12]})"
        )
        for upstream in manifest.get("upstream", []):
            visit(upstream["dataset"], upstream["version"], depth + 1)
        for item in manifest.get("inputs", []):
            lines.append(f"{pad}  {item['role']}: {item['path']}  sha256:{item['sha256'][:16]}")

    visit(dataset, resolve_version(publish_dir, dataset, version), 0)
    return lines


def diff_releases(publish_dir: Path, dataset: str, old: str, new: str, top: int = 10) -> str:
    """What changed between two releases: rows added, removed and changed (by the dataset's
    key), and for an index, the largest rank moves."""
    old, new = (
        resolve_version(publish_dir, dataset, old),
        resolve_version(publish_dir, dataset, new),
    )
    manifest = read_manifest(publish_dir, dataset, new)
    key = manifest.get("key") or [manifest["schema"][0]["column"]]
    on = " AND ".join(f"a.{ident(k)} IS NOT DISTINCT FROM b.{ident(k)}" for k in key)
    con = connect()
    try:
        for view, version in (("a", old), ("b", new)):
            path = storage.join(publish_dir, dataset, version, DATA_FILE)
            con.read_parquet(str(path)).create_view(view)
        added = con.execute(f"SELECT count(*) FROM b ANTI JOIN a ON {on}").fetchone()[0]
        removed = con.execute(f"SELECT count(*) FROM a ANTI JOIN b ON {on}").fetchone()[0]
        shared_columns = [
            r[0]
            for r in con.execute("DESCRIBE b").fetchall()
            if r[0] in {c[0] for c in con.execute("DESCRIBE a").fetchall()} and r[0] not in key
        ]
        differs = " OR ".join(f"a.{ident(c)} IS DISTINCT FROM b.{ident(c)}" for c in shared_columns)
        changed = con.execute(
            f"SELECT count(*) FROM a JOIN b ON {on} WHERE {differs or 'false'}"
        ).fetchone()[0]
        lines = [
            f"{dataset} {old} → {new}: {added} rows added, {removed} removed, {changed} changed",
        ]
        if "rank" in shared_columns:
            moves = con.execute(
                f"SELECT {', '.join(f'b.{ident(k)}' for k in key)}, a.rank, b.rank, "
                f"b.rank - a.rank AS move FROM a JOIN b ON {on} WHERE a.rank <> b.rank "
                f"ORDER BY abs(b.rank - a.rank) DESC, 1 LIMIT {int(top)}"
            ).fetchall()
            if moves:
                lines.append(f"largest rank moves ({len(moves)} shown; negative = more in need):")
                lines += [
                    f"  {' '.join(str(v) for v in row[:-3])}: {row[-3]} → {row[-2]} ({row[-1]:+d})"
                    for row in moves
                ]
    finally:
        con.close()
    return "\n".join(lines)


def prune_releases(publish_dir: Path, dataset: str, keep: int) -> list[str]:
    """Remove all but the newest `keep` releases of a dataset (at least one is always kept),
    and what dead runs left (`clear_leftovers`, release folders no pointer names); the catalog
    is rebuilt. The versions removed. On an object store, where no lock keeps publishers out, a
    folder without a pointer may be one a live publisher is still uploading: it is removed only
    once older than `leftovers.STALE_AFTER`."""
    if keep < 1:
        raise ValueError("keep must be at least 1: the latest release is never removed")
    publish_dir = storage.coerce(publish_dir)
    with storage.writing(publish_dir), publish_lock(publish_dir):
        clear_leftovers(publish_dir)
        versions = list_versions(publish_dir, dataset)
        if not versions:
            raise ValueError(f"no releases of {dataset!r} in {publish_dir}")
        removed = versions[:-keep]
        for version in removed:
            storage.rm(pointer_path(publish_dir, dataset, version))  # first: now invisible
            _remove_folder(storage.join(publish_dir, dataset, version))
        for folder in release_folders(publish_dir, dataset):
            path = storage.join(publish_dir, dataset, folder)
            if folder not in versions and _abandoned(path):
                _remove_folder(path)
        rebuild_catalog(publish_dir)
    return removed


def _abandoned(folder: storage.Location) -> bool:
    """Whether a release folder without a pointer was left by a dead run. Locally, yes: the
    publish lock held here keeps every publisher out between its folder and its pointer."""
    if not storage.is_url(folder):
        return True
    return time.time() - storage.modified_time(folder) > leftovers.STALE_AFTER


def _remove_folder(folder: storage.Location) -> None:
    """Remove a release folder; locally its files are read-only, so make them writable first."""
    if not storage.is_url(folder):
        for item in Path(folder).glob("*"):
            item.chmod(0o644)
    storage.rm(folder)


def openlineage_events(publish_dir: Path, dataset: str, version: str | None = None) -> list:
    """OpenLineage run events (START and COMPLETE) describing how a release was made: the job,
    its run, the raw, reference and upstream datasets it read, and the release it wrote."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import schema_dataset
    from openlineage.client.uuid import generate_new_uuid

    version = resolve_version(publish_dir, dataset, version)
    manifest = read_manifest(publish_dir, dataset, version)
    namespace = (
        str(publish_dir) if storage.is_url(publish_dir) else f"file://{Path(publish_dir).resolve()}"
    )
    inputs = [
        InputDataset(namespace="file://" + str(Path(i["path"]).parent), name=Path(i["path"]).name)
        for i in manifest.get("inputs", [])
    ]
    inputs += [
        InputDataset(namespace=namespace, name=f"{u['dataset']}/{u['version']}")
        for u in manifest.get("upstream", [])
    ]
    fields = [
        schema_dataset.SchemaDatasetFacetFields(
            name=c["column"], type=c["type"], description=c["description"] or None
        )
        for c in manifest["schema"]
    ]
    output = OutputDataset(
        namespace=namespace,
        name=f"{dataset}/{version}",
        facets={"schema": schema_dataset.SchemaDatasetFacet(fields=fields)},
    )
    run = Run(runId=manifest.get("run_id") or str(generate_new_uuid()))
    job = Job(namespace="indices", name=f"publish.{dataset}")
    return [
        RunEvent(
            eventType=state,
            eventTime=manifest["created"],
            run=run,
            job=job,
            producer="https://github.com/indices/indices",
            inputs=inputs,
            outputs=[output],
        )
        for state in (RunState.START, RunState.COMPLETE)
    ]


def export_openlineage(publish_dir: Path, dataset: str, version: str | None, target: Path) -> int:
    """Write a release's OpenLineage events to a file, one JSON event per line, through the
    OpenLineage client's file transport; the number of events written."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.file import FileConfig, FileTransport

    events = openlineage_events(publish_dir, dataset, version)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    client = OpenLineageClient(
        transport=FileTransport(FileConfig(log_file_path=str(target), append=True))
    )
    for event in events:
        client.emit(event)
    return len(events)
