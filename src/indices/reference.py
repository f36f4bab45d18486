"""Reference data: where the controlled vocabularies live, and what version of each a run used."""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

import pandas as pd

_CHECKOUT_REFERENCE = Path(__file__).resolve().parents[2] / "data" / "reference"


def reference_dir() -> Path:
    """The reference data folder: `INDICES_REFERENCE_DIR`, else `data/reference` of the checkout."""
    return Path(os.environ.get("INDICES_REFERENCE_DIR", _CHECKOUT_REFERENCE))


def reference_path(relative: str) -> Path:
    """Absolute path of one reference file, e.g. `frailty/efi_snomed_codes.csv`."""
    path = reference_dir() / relative
    if not path.is_file():
        raise FileNotFoundError(f"reference file missing: {path}")
    return path


def file_sha256(path: Path | str) -> str:
    """Content hash of a file, read in chunks so large extracts stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@cache
def lsoa_lookup() -> pd.DataFrame:
    """LSOA 2011 → lower-tier local authority 2019, with populations and IMD/IDAOPI ranks."""
    return pd.read_csv(reference_path("geography/lsoa11_lad19.csv"), dtype={"lsoa11_code": str})


@cache
def efi_codes() -> pd.DataFrame:
    """The eFI SNOMED CT code list: deficit_id, snomed_code (text), term."""
    return pd.read_csv(reference_path("frailty/efi_snomed_codes.csv"), dtype=str)


@cache
def efi_deficits() -> pd.DataFrame:
    """The 36 eFI deficits in their published order."""
    return pd.read_csv(reference_path("frailty/efi_deficits.csv"))
