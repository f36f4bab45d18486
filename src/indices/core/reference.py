"""Reference data: where the controlled vocabularies live, and what version of each a run used."""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

import duckdb
import pandas as pd

_CHECKOUT_REFERENCE = Path(__file__).resolve().parents[3] / "data" / "reference"


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


def input_record(path: Path, role: str) -> dict:
    """A raw extract or reference file that fed a release: its path and content hash."""
    return {"role": role, "path": str(path), "sha256": file_sha256(path)}


# Every reference file a run's figures depend on, recorded in each release's lineage.
REFERENCE_FILES = (
    "geography/lsoa11_lad19.csv",
    "frailty/plausible_shares.csv",
    "frailty/efi_snomed_codes.csv",
    "frailty/efi_deficits.csv",
    "frailty/hfrs_icd10_weights.csv",
    "frailty/index_bands.csv",
    "vocabularies/sex_codes.csv",
    "vocabularies/admission_methods.csv",
    "vocabularies/asc_event_types.csv",
    "vocabularies/asc_service_types.csv",
    "vocabularies/asc_genders.csv",
)


def vocabulary(source: str) -> list[str]:
    """A controlled vocabulary's values, from its reference file: "file.csv:column"."""
    file, column = source.split(":")
    return pd.read_csv(reference_path(file), dtype=str)[column].tolist()


LSOA_LOOKUP = "geography/lsoa11_lad19.csv"


def load_lsoa_lookup(con: duckdb.DuckDBPyConnection) -> None:
    """The LSOA 2011 → LAD 2019 lookup as the view `lsoa_lookup` of this connection (every column
    text): the file is named once, and every query of the connection reads the view."""
    relation = con.read_csv(str(reference_path(LSOA_LOOKUP)), all_varchar=True)
    relation.create_view("lsoa_lookup", replace=True)
