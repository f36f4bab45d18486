"""Finding the extracts in a raw folder laid out as the spec says."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

ALL_SOURCES = ("gp_patients", "gp_events", "gp_medications", "hes_apc", "asc_cld", "fingertips")
EXTENSIONS = ("csv.gz", "csv", "parquet")

_NAME = re.compile(
    r"^(?P<source>[a-z_]+?)(?:_(?P<lad>E0[6-9]\d{6}))?_(?P<date>\d{4}-\d{2}-\d{2})"
    r"\.(?P<ext>csv\.gz|csv|parquet)$"
)


class RawFolderError(ValueError):
    """The raw folder cannot be used; the message is one line naming what is wrong."""


@dataclass(frozen=True)
class Extract:
    """One raw file: a full snapshot of a source as at its extract date."""

    source: str
    path: Path
    extract_date: date
    lad19_code: str | None = None

    @property
    def fmt(self) -> str:
        return next(ext for ext in EXTENSIONS if self.path.name.endswith("." + ext))


def parse_extract_name(path: Path, source: str) -> Extract:
    """Read source, LAD and extract date from a file name, or say why it is not an extract."""
    pattern = "asc_cld_<LAD code>_<YYYY-MM-DD>" if source == "asc_cld" else f"{source}_<YYYY-MM-DD>"
    expected = f"expected {pattern}.csv, .csv.gz or .parquet"
    match = _NAME.match(path.name)
    if not match or match["source"] != source or bool(match["lad"]) != (source == "asc_cld"):
        raise RawFolderError(f"{path}: not an extract of {source}; {expected}")
    try:
        extract_date = date.fromisoformat(match["date"])
    except ValueError:
        raise RawFolderError(f"{path}: {match['date']!r} is not a date; {expected}") from None
    return Extract(source, path, extract_date, match["lad"])


def list_extracts(raw_dir: Path, source: str) -> list[Extract]:
    """Every extract of a source, oldest first; an empty list if the source folder is absent."""
    folder = Path(raw_dir) / source
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    extracts = [parse_extract_name(p, source) for p in files]
    return sorted(extracts, key=lambda e: (e.extract_date, e.lad19_code or "", e.path.name))


def current_extracts(raw_dir: Path, source: str) -> list[Extract]:
    """The extracts in force: the newest one, or for `asc_cld` the newest one per authority."""
    newest: dict[str | None, Extract] = {}
    for extract in list_extracts(raw_dir, source):
        newest[extract.lad19_code] = extract  # later dates overwrite earlier ones
    return sorted(newest.values(), key=lambda e: e.lad19_code or "")


def check_raw_folder(raw_dir: Path, required: tuple[str, ...]) -> dict[str, list[Extract]]:
    """The current extracts of every source, after checking the folder is usable."""
    raw_dir = Path(raw_dir)
    if not raw_dir.exists():
        raise RawFolderError(f"raw folder {raw_dir} does not exist")
    if not raw_dir.is_dir():
        raise RawFolderError(f"raw folder {raw_dir} is not a folder")
    found = {source: current_extracts(raw_dir, source) for source in ALL_SOURCES}
    missing = [source for source in required if not found[source]]
    if missing:
        raise RawFolderError(
            f"raw folder {raw_dir} has no extract of {', '.join(missing)} "
            f"(expected files like {raw_dir}/{missing[0]}/{missing[0]}_YYYY-MM-DD.csv)"
        )
    return found


def newest_extract_date(raw_dir: Path, source: str = "gp_patients") -> date:
    """The extract date of the newest extract of a source: the default reference date."""
    extracts = list_extracts(raw_dir, source)
    if not extracts:
        raise RawFolderError(f"raw folder {raw_dir} has no extract of {source}")
    return extracts[-1].extract_date
