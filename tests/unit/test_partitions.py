"""The local authorities of a raw folder, read without conforming anything (the partitioned
pipeline itself: tests/integration/test_partitions.py)."""

from __future__ import annotations

from indices.core.settings import Settings
from indices.sources import conformed
from tests.helpers import PATIENT_COLUMNS, register_row, write_csv


def test_the_authorities_are_read_from_the_raw_folder(tmp_path):
    """Those of the newest register's LSOAs (its header as senders write it, unknown LSOAs
    ignored) and those sending social care data, without conforming anything."""

    header = [f" {c.upper()} " if c == "lsoa11_code" else c for c in PATIENT_COLUMNS]
    raw = tmp_path / "raw"
    write_csv(
        raw / "gp_patients" / "gp_patients_2024-03-31.csv",
        PATIENT_COLUMNS,
        [register_row("9434765919", lsoa11_code="E01000001")],  # City of London, superseded
    )
    write_csv(
        raw / "gp_patients" / "gp_patients_2025-03-31.csv",
        header,
        [
            register_row("9434765919", lsoa11_code="E01011949"),  # Hartlepool
            register_row("9434765870", lsoa11_code=""),
            register_row("9434765889", lsoa11_code="E01999999"),  # in no lookup
        ],
    )
    write_csv(raw / "asc_cld" / "asc_cld_E06000053_2025-03-31.csv", ["LA_Code"], [["E06000053"]])
    settings = Settings.resolve(raw, tmp_path / "warehouse", tmp_path / "published")
    assert conformed.authorities_in_raw(settings) == ["E06000001", "E06000053"]
