"""Where a run reads and writes: the raw, warehouse and publish folders, and the reference date."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

DEFAULT_RAW_DIR = "data/raw"
DEFAULT_PUBLISH_DIR = "data/published"
DEFAULT_WAREHOUSE_DIR = "data/warehouse"


@dataclass(frozen=True)
class Settings:
    """The three folders of a run, absolute, and an optional fixed reference date."""

    raw_dir: Path
    warehouse_dir: Path
    publish_dir: Path
    reference_date: date | None = None

    @classmethod
    def resolve(
        cls,
        raw_dir: str | Path | None = None,
        warehouse_dir: str | Path | None = None,
        publish_dir: str | Path | None = None,
        reference_date: str | date | None = None,
    ) -> Settings:
        """Explicit values first, then `INDICES_*_DIR` environment variables, then the defaults."""

        def pick(value: str | Path | None, env: str, default: str) -> Path:
            chosen = value if value not in (None, "") else os.environ.get(env) or default
            return Path(chosen).expanduser().resolve()

        if isinstance(reference_date, str) and reference_date:
            reference_date = parse_iso_date(reference_date, "reference date")
        return cls(
            raw_dir=pick(raw_dir, "INDICES_RAW_DIR", DEFAULT_RAW_DIR),
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
