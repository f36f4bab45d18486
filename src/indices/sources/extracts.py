"""Finding the extracts in a raw folder laid out as the spec says."""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from indices.sources.pseudonym import mask_nhs_numbers
from indices.sources.registry import REGISTER, SOURCES

EXTENSIONS = ("csv.gz", "csv", "parquet")

_NAME = re.compile(
    r"^(?P<source>[a-z_]+?)(?:_(?P<lad>E0[6-9]\d{6}))?_(?P<date>\d{4}-\d{2}-\d{2})"
    r"\.(?P<ext>csv\.gz|csv|parquet)$"
)


class RawFolderError(ValueError):
    """The raw folder cannot be used; the message is one line naming what is wrong (anything
    in it that could be an NHS number masked: a file name is the sender's text)."""

    def __init__(self, message: str) -> None:
        super().__init__(mask_nhs_numbers(message))


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
    by_authority = SOURCES[source].by_authority
    expected = f"expected {SOURCES[source].file_pattern}.csv, .csv.gz or .parquet"
    match = _NAME.match(path.name)
    if not match or match["source"] != source or bool(match["lad"]) != by_authority:
        raise RawFolderError(f"{path}: not an extract of {source}; {expected}")
    try:
        extract_date = date.fromisoformat(match["date"])
    except ValueError:
        raise RawFolderError(f"{path}: {match['date']!r} is not a date; {expected}") from None
    return Extract(source, path, extract_date, match["lad"])


def _check_readable(path: Path) -> None:
    """A regular file (not a link, folder or device: nothing read through one) we may read."""
    mode = path.lstat().st_mode
    if not stat.S_ISREG(mode):
        kind = "a symbolic link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode) else ""
        raise RawFolderError(f"{path}: not a regular file" + (f" ({kind})" if kind else ""))
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        reason = (error.strerror or type(error).__name__).lower()
        raise RawFolderError(f"{path}: cannot be read ({reason})") from None


def list_extracts(raw_dir: Path, source: str, today: date | None = None) -> list[Extract]:
    """Every extract of a source, oldest first; an empty list if the source folder is absent.
    Refused: anything in the folder that is not a readable regular file, an extract dated
    after `today` (by default today in UTC), and one extract date (of one authority) sent in
    two formats, which would leave the choice to the sort order."""
    folder = Path(raw_dir) / source
    if not folder.is_dir():
        return []
    today = today or datetime.now(UTC).date()
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for path in entries:
        _check_readable(path)
    extracts = [parse_extract_name(p, source) for p in entries]
    seen: dict[tuple[str | None, date], Extract] = {}
    for extract in extracts:
        if extract.extract_date > today:
            raise RawFolderError(
                f"{extract.path}: extract date {extract.extract_date} is after today ({today})"
            )
        other = seen.setdefault((extract.lad19_code, extract.extract_date), extract)
        if other is not extract:
            raise RawFolderError(
                f"{folder}: {other.path.name} and {extract.path.name} are one extract in two "
                "formats; keep one"
            )
    return sorted(extracts, key=lambda e: (e.extract_date, e.lad19_code or "", e.path.name))


def current_extracts(raw_dir: Path, source: str, today: date | None = None) -> list[Extract]:
    """The extracts in force: the newest one, or for a source sent by each local authority
    (`asc_cld`) the newest one per authority."""
    newest: dict[str | None, Extract] = {}
    for extract in list_extracts(raw_dir, source, today):
        newest[extract.lad19_code] = extract  # later dates overwrite earlier ones
    return sorted(newest.values(), key=lambda e: e.lad19_code or "")


def check_raw_folder(
    raw_dir: Path, required: tuple[str, ...], today: date | None = None
) -> dict[str, list[Extract]]:
    """The current extracts of every source, after checking the folder is usable."""
    raw_dir = Path(raw_dir)
    if not raw_dir.exists():
        raise RawFolderError(f"raw folder {raw_dir} does not exist")
    if not raw_dir.is_dir():
        raise RawFolderError(f"raw folder {raw_dir} is not a folder")
    found = {source: current_extracts(raw_dir, source, today) for source in SOURCES}
    missing = [source for source in required if not found[source]]
    if missing:
        raise RawFolderError(
            f"raw folder {raw_dir} has no extract of {', '.join(missing)} "
            f"(expected files like {raw_dir}/{missing[0]}/{missing[0]}_YYYY-MM-DD.csv)"
        )
    return found


def newest_extract_date(raw_dir: Path, source: str = REGISTER) -> date:
    """The extract date of the newest extract of a source: the default reference date."""
    extracts = list_extracts(raw_dir, source)
    if not extracts:
        raise RawFolderError(f"raw folder {raw_dir} has no extract of {source}")
    return extracts[-1].extract_date
