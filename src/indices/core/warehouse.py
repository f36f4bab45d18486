"""Every path of the private warehouse, in one place: what lives where.

```
<warehouse>/conformed/<source>.parquet|.json      a conformed table and its sidecar (raw files,
<warehouse>/conformed/<source>/<part>.parquet|.json  ledger, what it was made from); by part for
<warehouse>/quarantine/<source>[/<part>].parquet  sources sent per authority; rows set aside
<warehouse>/measures/<table>/<part>.parquet|.json  person-level parts and what each is made from
<warehouse>/measures/area_counts.parquet|.json   exact area counts and what they are made from
<warehouse>/measures/disclosure_audit.json       which cells the disclosure audit found
<warehouse>/runs/<name>.json                      what each run decided to read
<warehouse>/pseudonym.key                         the pseudonym key (when not in the environment)
<warehouse>/tmp/                                  DuckDB spill files and temporary copies
```

Everything here is private: nothing in the warehouse is ever published.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indices.core import storage
from indices.core.storage import Location

CONFORMED = "conformed"
QUARANTINE = "quarantine"
MEASURES = "measures"
RUNS = "runs"
PSEUDONYM_KEY = "pseudonym.key"


def _source_file(warehouse: Location, folder: str, source: str, part: str | None, suffix: str):
    """`<folder>/<source><suffix>`, or `<folder>/<source>/<part><suffix>` for one part of a
    source conformed by parts (asc_cld by sending authority)."""
    if part is None:
        return storage.join(warehouse, folder, f"{source}{suffix}")
    return storage.join(warehouse, folder, source, f"{part}{suffix}")


def conformed(warehouse: Location, source: str, part: str | None = None) -> Location:
    """A source's (or one part's) conformed table."""
    return _source_file(warehouse, CONFORMED, source, part, ".parquet")


def quarantine(warehouse: Location, source: str, part: str | None = None) -> Location:
    """A source's (or one part's) quarantined rows."""
    return _source_file(warehouse, QUARANTINE, source, part, ".parquet")


def sidecar(warehouse: Location, source: str, part: str | None = None) -> Location:
    """The JSON beside a conformed table: the raw files it came from, its ledger, what run
    inputs it was made from."""
    return _source_file(warehouse, CONFORMED, source, part, ".json")


def conformed_parts(warehouse: Location, source: str) -> list[str]:
    """The parts of a source conformed by parts, e.g. the authorities of asc_cld."""
    folder = storage.join(warehouse, CONFORMED, source)
    return [n.removesuffix(".json") for n in storage.listdir(folder) if n.endswith(".json")]


def measures_part(warehouse: Location, table: str, part: str, suffix: str = ".parquet"):
    """One part of a partitioned measures table, e.g. `measures/persons/E06000001.parquet`, or
    (suffix `.json`) the record of what it was made from."""
    return storage.join(warehouse, MEASURES, table, f"{part}{suffix}")


def area_counts(warehouse: Location, suffix: str = ".parquet") -> Location:
    """The exact area counts, or (suffix `.json`) the record of what they were made from."""
    return storage.join(warehouse, MEASURES, f"area_counts{suffix}")


def disclosure_audit(warehouse: Location) -> Location:
    """Which cells the disclosure audit of the latest area release found narrowed or pinned."""
    return storage.join(warehouse, MEASURES, "disclosure_audit.json")


def run_record(warehouse: Location, name: str) -> Location:
    """A record of what a run decided to read (`indices.sources.inputs`)."""
    return storage.join(warehouse, RUNS, f"{name}.json")


def pseudonym_key(warehouse: Location) -> Location:
    return storage.join(warehouse, PSEUDONYM_KEY)


def dagster_home(warehouse: Location) -> Path:
    """Where runs are recorded when no `DAGSTER_HOME` is set: in a local warehouse, else in the
    user's home (an object store cannot hold a Dagster instance)."""
    if storage.is_url(warehouse):
        return Path.home() / ".indices" / "dagster_home"
    return Path(warehouse) / "dagster_home"


def scratch(warehouse: Location) -> Path:
    """A local folder for DuckDB's spill files and temporary copies: `<warehouse>/tmp` for a
    local warehouse, the system temporary folder for an object store."""
    if storage.is_url(warehouse):
        return storage.system_temp()
    return Path(warehouse) / "tmp"


@dataclass(frozen=True)
class Table:
    """A warehouse table an index spec may read: an area-level aggregate, never person-level.
    `name` is also its Dagster asset key (`measures/area_counts`)."""

    name: str

    @property
    def file(self) -> str:
        return f"{self.name}.parquet"

    def path(self, warehouse: Location) -> Location:
        return storage.join(warehouse, self.file)


AREA_COUNTS = Table(f"{MEASURES}/area_counts")
# The only warehouse tables a spec may name (`warehouse:<file>`): exact counts per area feed an
# index, whose published figures are not the counts; nothing with a person in it is readable.
READABLE_BY_SPECS = {table.file: table for table in (AREA_COUNTS,)}
