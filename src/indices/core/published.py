"""The publish folder's layout, in one place: where releases, their pointers, the catalog, the
staging area and the lock live, and how releases are listed and read.

```
<publish>/<dataset>/<version>/data.parquet, manifest.json   a release (immutable)
<publish>/<dataset>/_releases/<version>.json                 its pointer: the release is visible
<publish>/catalog.duckdb                                     views over the releases (derived)
<publish>/.staging/                                          releases being written
<publish>/.publish.lock                                      one publisher at a time (locally)
```
"""

from __future__ import annotations

import fcntl
import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from indices.core import leftovers, storage
from indices.core.storage import Location

DATA_FILE = "data.parquet"


MANIFEST = "manifest.json"


CATALOG = "catalog.duckdb"


STAGING = ".staging"


RELEASES = "_releases"  # a release is visible iff its pointer `_releases/<version>.json` exists


LOCK = ".publish.lock"


VERSION = re.compile(r"v\d{6}")


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


def list_datasets(publish_dir: Location) -> list[str]:
    return sorted(released(publish_dir))


def released(publish_dir: Location) -> dict[str, list[str]]:
    """Every dataset with a release, and its versions: what the catalog must show."""
    found = {}
    for name in storage.listdir(publish_dir):
        if not name.startswith((".", "_")):
            versions = list_versions(publish_dir, name)
            if versions:
                found[name] = versions
    return found


def latest_data(publish_dir: Location, dataset: str) -> Location | None:
    """The data file of a dataset's latest release, or None when it has none."""
    versions = list_versions(publish_dir, dataset)
    return storage.join(publish_dir, dataset, versions[-1], DATA_FILE) if versions else None
