"""Where a run reads and writes: the raw, warehouse and publish folders, and the reference date."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Protocol

from indices.core import storage

DEFAULT_RAW_DIR = "data/raw"
DEFAULT_PUBLISH_DIR = "data/published"
DEFAULT_WAREHOUSE_DIR = "data/warehouse"


class DecidedInputs(Protocol):
    """What a run decided to read when it started: its reference date and, per source, the
    extracts in force (`indices.sources.inputs.RunInputs`)."""

    reference_date: date

    def of(self, source: str) -> list: ...


@dataclass(frozen=True)
class Settings:
    """The three folders of a run, absolute, and an optional fixed reference date. The warehouse
    and the releases may also be object-store URLs (`s3://bucket/prefix`, kept as strings, see
    `indices.core.storage`); the raw extracts are read from a local folder. Within a run, `inputs`
    holds what the run decided to read when it started (`indices.sources.inputs`); without it (the
    library used on its own), each step reads the raw folder as it is."""

    raw_dir: Path
    warehouse_dir: storage.Location
    publish_dir: storage.Location
    reference_date: date | None = None
    inputs: DecidedInputs | None = None

    def with_inputs(self, inputs: DecidedInputs) -> Settings:
        """These settings within a run that decided its inputs (and so its reference date)."""
        return replace(self, reference_date=inputs.reference_date, inputs=inputs)

    @classmethod
    def resolve(
        cls,
        raw_dir: str | Path | None = None,
        warehouse_dir: str | Path | None = None,
        publish_dir: str | Path | None = None,
        reference_date: str | date | None = None,
    ) -> Settings:
        """Explicit values first, then `INDICES_*_DIR` environment variables, then the defaults."""

        def pick(value: str | Path | None, env: str, default: str) -> storage.Location:
            chosen = value if value not in (None, "") else os.environ.get(env) or default
            return storage.location(chosen)

        if isinstance(reference_date, str) and reference_date:
            reference_date = parse_iso_date(reference_date, "reference date")
        raw = pick(raw_dir, "INDICES_RAW_DIR", DEFAULT_RAW_DIR)
        if storage.is_url(raw):
            raise ValueError(f"the raw folder must be a local folder, got {raw}")
        return cls(
            raw_dir=raw,
            warehouse_dir=pick(warehouse_dir, "INDICES_WAREHOUSE_DIR", DEFAULT_WAREHOUSE_DIR),
            publish_dir=pick(publish_dir, "INDICES_PUBLISH_DIR", DEFAULT_PUBLISH_DIR),
            reference_date=reference_date or None,
        )


def parse_iso_date(text: str, what: str) -> date:
    """A `YYYY-MM-DD` date, or a ValueError that names what was expected."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{what} must be YYYY-MM-DD, got {text!r}") from None
