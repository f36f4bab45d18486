"""Raw extracts as observable source assets: observing one records its data version, the hash
of the extracts in force, so the UI shows what a new extract makes stale."""

import hashlib
import warnings
from pathlib import Path

import dagster as dg
import pandas as pd

from indices.core.reference import file_sha256
from indices.sources import inputs as run_inputs
from indices.sources import registry
from indices.sources.extracts import Extract, RawFolderError, current_extracts
from pipelines.metadata import COMMON, markdown_table
from pipelines.resources import IndicesSettings

# Every asset that reads or writes files retries on failure: a share or disk that hiccups
# (transient I/O) gets two more tries, 10 s then 20 s later. A raw folder that cannot be used is
# not retried (conformed assets raise `dg.Failure(allow_retries=False)` for it).
TRANSIENT_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)

ABSENT = "absent"  # the data version of a source with no extract (its folder may be missing)
INVALID = "invalid"  # a source folder holding a file that is not an extract of it


def raw_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", source])


def source_version(extracts: list[Extract]) -> tuple[str, list[dict]]:
    """The data version of a source's extracts in force (the newest, or for asc_cld the newest
    per authority) and one record per file. The version is the SHA-256 of the lines
    `<file name> <SHA-256 of the file's content>`, sorted by name, so it changes with the content
    and with the extract date in the name; `absent` when there is no extract."""
    if not extracts:
        return ABSENT, []
    files = sorted(
        (_file_record(e.path, e.extract_date.isoformat()) for e in extracts),
        key=lambda f: f["file"],
    )
    lines = "".join(f"{f['file']} {f['sha256']}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest(), files


def observed_extracts(settings: IndicesSettings, source: str) -> list[Extract]:
    """The extracts this run reads, decided when it started; when the run could not decide
    them (the raw folder unusable: its steps fail saying why), the source folder as it is."""
    try:
        return run_inputs.in_force(settings.resolve(), source)
    except RawFolderError:
        return current_extracts(settings.folders().raw_dir, source)


def _file_record(path: Path, extract_date: str) -> dict:
    try:
        return {
            "file": path.name,
            "extract_date": extract_date,
            "bytes": path.stat().st_size,
            "sha256": file_sha256(path),
        }
    except OSError as error:  # gone or made unreadable since it was listed: record, not crash
        reason = (error.strerror or type(error).__name__).lower()
        raise RawFolderError(f"{path}: cannot be read ({reason})") from None


def raw_asset(source: str) -> dg.AssetsDefinition:
    declared = registry.SOURCES[source]
    spec = dg.AssetSpec(
        key=raw_key(source),
        group_name="raw",
        kinds={"csv", "parquet"},
        owners=COMMON["owners"],
        description=f"{declared.raw_description} Files `{source}/{declared.file_pattern}"
        ".csv|csv.gz|parquet` in the raw folder (read-only). Observing it hashes the extracts "
        "in force; a new or changed one marks the conformed table made from the old one stale.",
    )

    def _observe(context: dg.AssetExecutionContext, settings: IndicesSettings):
        folder = settings.folders().raw_dir / source
        try:
            version, files = source_version(observed_extracts(settings, source))
        except RawFolderError as error:
            context.log.warning(str(error))
            return dg.ObserveResult(
                data_version=dg.DataVersion(INVALID),
                metadata={"folder": dg.MetadataValue.path(str(folder)), "problem": str(error)},
            )
        if not files:
            context.log.info(f"no extract of {source} in {folder}")
        return dg.ObserveResult(
            data_version=dg.DataVersion(version),
            metadata={
                "folder": dg.MetadataValue.path(str(folder)),
                "extracts": len(files),
                "newest_extract_date": max((f["extract_date"] for f in files), default=""),
                "bytes": sum(f["bytes"] for f in files),
                "files": markdown_table(pd.DataFrame(files)),
            },
        )

    with warnings.catch_warnings():  # a beta API, the one that gives a source owners and kinds
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.multi_observable_source_asset(specs=[spec], name=f"observe_raw_{source}")(
            _observe
        )


definitions = dg.Definitions(assets=[raw_asset(s) for s in registry.SOURCES])
