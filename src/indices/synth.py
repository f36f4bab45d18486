"""Deterministic synthetic raw extracts, in the exact layouts of `raw-extracts.md`.

`generate` writes all six raw sources (gp_patients, gp_events, gp_medications, hes_apc, asc_cld,
fingertips) for a synthetic population spread over real 2011 LSOAs in proportion to their mid-2015
population, with ages from each LSOA's age bands and frailty rising with age and deprivation. Every
quirk listed in the spec can be injected at a known rate (`faults`), at most one fault per row, and
each file's fault counts are recorded in `_synth.json`, so a test can predict the disposition of
every row. With `faults=0` the output is clean: every NHS number valid, every date and code
parseable.

Persons are generated in chunks (`CHUNK_PERSONS`) laid out in local-authority order and appended
to the output files, so memory stays bounded whatever the population size. Same arguments give
byte-identical files: all randomness comes from numpy Generators seeded from `seed`, gzip streams
are written with `mtime=0` and no file name, and no timestamps are written.

NHS numbers are valid Modulus 11 numbers in the 9xx range, which is never issued to real patients
(reserved for synthetic and test data), unique per person and the same across all sources.
"""

from __future__ import annotations

import gzip
import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from indices.core.reference import efi_codes, efi_deficits, lsoa_lookup, reference_path

__all__ = ["COLUMNS", "FAULT_KINDS", "FILE_FAULTS", "SOURCES", "generate"]

SOURCES = ("gp_patients", "gp_events", "gp_medications", "hes_apc", "asc_cld", "fingertips")
FORMATS = ("csv", "csv.gz", "parquet")
CHUNK_PERSONS = 20_000
GENERATOR_VERSION = "1"

# The layouts as the spec gives them, written out here again on purpose rather than taken from
# the source declarations (`indices.sources.registry`): the generator is an independent check of
# the reader, so a declaration that drifted from the spec shows as a failing test instead of
# being copied into the test data. Fingertips files carry the extra columns the real downloads
# have, which the reader ignores.
COLUMNS: dict[str, list[str]] = {
    "gp_patients": [
        "nhs_number",
        "date_of_birth",
        "sex",
        "lsoa11_code",
        "practice_code",
        "registration_start",
        "registration_end",
        "date_of_death",
    ],
    "gp_events": ["nhs_number", "event_date", "snomed_code", "value", "unit"],
    "gp_medications": ["nhs_number", "issue_date", "bnf_code"],
    "hes_apc": ["nhs_number", "epikey", "admidate", "epistart", "epiend", "disdate", "admimeth"]
    + [f"diag_4_{i:02d}" for i in range(1, 21)],
    "asc_cld": [
        "LA_Code",
        "NHS_Number",
        "Client_ID",
        "Gender",
        "Event_Type",
        "Event_Start_Date",
        "Event_End_Date",
        "Service_Type",
        "Primary_Support_Reason",
    ],
    "fingertips": [
        "Indicator ID",
        "Indicator Name",
        "Parent Code",
        "Parent Name",
        "Area Code",
        "Area Name",
        "Area Type",
        "Sex",
        "Age",
        "Category Type",
        "Category",
        "Time period",
        "Value",
        "Lower CI 95.0 limit",
        "Upper CI 95.0 limit",
        "Lower CI 99.8 limit",
        "Upper CI 99.8 limit",
        "Count",
        "Denominator",
        "Value note",
        "Recent Trend",
        "Compared to England value or percentiles",
        "Compared to percentiles",
        "Time period Sortable",
        "New data",
        "Compared to goal",
    ],
}

_NHS = ("nhs_spaces", "nhs_bad_check", "nhs_blank", "nhs_short")
_DATES = ("iso_as_uk_date", "unparseable_date", "future_date", "pre_1900_date")
#: Row-level fault kinds per person-level source, in the order their rate bands are laid out.
FAULT_KINDS: dict[str, tuple[str, ...]] = {
    "gp_patients": _NHS
    + (
        "duplicate_row",
        "malformed_row",
        "iso_as_uk_date",
        "unparseable_date",
        "pre_1900_date",
        "conflicting_identity",
        "blank_lsoa",
        "unknown_lsoa",
        "bad_sex_code",
    ),
    "gp_events": _NHS
    + ("duplicate_row", "unknown_person", "malformed_row")
    + _DATES
    + ("bad_snomed",),
    "gp_medications": _NHS + ("duplicate_row", "unknown_person", "malformed_row") + _DATES,
    "hes_apc": _NHS
    + ("duplicate_row", "unknown_person", "malformed_row")
    + _DATES
    + ("conflicting_epikey", "hes_sentinel", "bad_icd10"),
    "asc_cld": (
        "nhs_spaces",
        "nhs_bad_check",
        "asc_blank_nhs",
        "nhs_short",
        "duplicate_row",
        "unknown_person",
        "malformed_row",
        "unparseable_date",
        "future_date",
        "pre_1900_date",
    ),
    "fingertips": (),
}
#: File-level fault kinds (CSV formats only, and only when faults > 0).
FILE_FAULTS: dict[str, tuple[str, ...]] = {
    "gp_events": ("header_variants", "truncated_last_line"),
    "gp_medications": ("extra_column",),
    "asc_cld": ("header_variants",),  # on every third local-authority file
}
_INSERTING = ("duplicate_row", "conflicting_identity", "conflicting_epikey")
_MAX_KINDS = max(len(k) for k in FAULT_KINDS.values())

_DATE_COLS = {
    "date_of_birth",
    "registration_start",
    "registration_end",
    "date_of_death",
    "event_date",
    "issue_date",
    "admidate",
    "epistart",
    "epiend",
    "disdate",
    "Event_Start_Date",
    "Event_End_Date",
}
_FAULT_DATE_COL = {
    "gp_patients": "date_of_birth",
    "gp_events": "event_date",
    "gp_medications": "issue_date",
    "hes_apc": "epistart",
    "asc_cld": "Event_Start_Date",
}
_EPOCH = date(1970, 1, 1)
_BLANK = np.int32(np.iinfo(np.int32).min)  # a blank typed date
_NO_NHS = np.int64(-1)  # a blank typed NHS number
_D1850, _D1899 = (date(1850, 1, 1) - _EPOCH).days, (date(1899, 12, 31) - _EPOCH).days
_D1900 = (date(1900, 1, 1) - _EPOCH).days

# --- vocabularies -------------------------------------------------------------------------------

# Relative prevalence of the 36 eFI deficits (published order) among older people.
_DEFICIT_WEIGHT = {
    "activity-limitation": 0.6,
    "anaemia": 1.0,
    "arthritis": 2.2,
    "atrial-fibrillation": 0.8,
    "stroke-tia": 0.6,
    "ckd": 1.0,
    "diabetes": 1.0,
    "dizziness": 0.9,
    "dyspnoea": 0.9,
    "falls": 0.8,
    "foot-problems": 0.7,
    "fragility-fracture": 0.5,
    "hearing-loss": 1.0,
    "heart-failure": 0.4,
    "heart-valve-disease": 0.3,
    "housebound": 0.3,
    "hypertension": 2.5,
    "hypotension": 0.5,
    "chd": 0.8,
    "cognitive-problems": 0.5,
    "mobility-problems": 0.6,
    "osteoporosis": 0.6,
    "parkinsons": 0.25,
    "peptic-ulcer": 0.5,
    "pvd": 0.3,
    "polypharmacy": 2.5,
    "care-requirement": 0.3,
    "respiratory-disease": 1.3,
    "skin-ulcer": 0.4,
    "sleep-disturbance": 0.8,
    "social-vulnerability": 0.4,
    "thyroid-disorders": 0.7,
    "urinary-incontinence": 0.7,
    "urinary-system-disease": 1.0,
    "vision-problems": 1.2,
    "weight-loss": 0.3,
}
# Target distribution of the deficit count among people aged 65+ alive at the extract date:
# fit 50%, mild 35%, moderate 12%, severe 3%.
_COUNT_PMF = np.array(
    [
        0.070,
        0.090,
        0.110,
        0.115,
        0.115,  # 0-4 fit
        0.100,
        0.093,
        0.083,
        0.074,  # 5-8 mild
        0.042,
        0.034,
        0.026,
        0.018,  # 9-12 moderate
        0.010,
        0.007,
        0.005,
        0.0035,
        0.002,
        0.0015,
        0.001,  # 13-19 severe
    ]
)
# Single-year population of England aged 60..105 relative to age 60 (shape of ONS mid-year figures).
_OLD_AGE_ANCHORS = (
    (60, 1.0),
    (65, 0.83),
    (70, 0.83),
    (75, 0.73),
    (80, 0.52),
    (85, 0.34),
    (90, 0.17),
    (95, 0.06),
    (100, 0.013),
    (105, 0.001),
)
_MAX_AGE = 105

# Observables with a value: code, unit, mean, sd, low, high, decimals, share of noise events.
_VALUE_CODES = (
    ("271649006", "mm[Hg]", 134.0, 17.0, 80, 220, 0, 0.12),  # systolic (diastolic paired)
    ("27113001", "kg", 78.0, 16.0, 2, 220, 1, 0.05),  # body weight
    ("60621009", "kg/m2", 27.5, 5.0, 12, 60, 1, 0.03),  # body mass index
    ("50373000", "cm", 168.0, 9.5, 45, 205, 0, 0.01),  # body height
    ("364075005", "/min", 74.0, 11.0, 40, 150, 0, 0.03),  # heart rate
    ("86290005", "/min", 16.0, 2.5, 8, 36, 0, 0.01),  # respiratory rate
    ("103228002", "%", 97.0, 1.5, 85, 100, 0, 0.01),  # haemoglobin oxygen saturation
)
_DIASTOLIC = ("271650006", "mm[Hg]", 79.0, 10.0, 40, 130, 0)
_N_SYNTHETIC_SNOMED = 1500

# Chemical substances (first 9 characters of the BNF code), repeat and acute prescribing.
_REPEAT_SUBSTANCES = (
    ("0212000B0", 3.0),
    ("0212000Y0", 1.5),
    ("0205051R0", 2.0),
    ("0205051L0", 0.8),
    ("0206020A0", 2.5),
    ("0204000H0", 1.8),
    ("0202010B0", 0.8),
    ("0202020L0", 1.2),
    ("0601022B0", 1.5),
    ("0601021M0", 0.6),
    ("0103050P0", 2.5),
    ("0103050L0", 1.5),
    ("0209000A0", 1.5),
    ("0209000C0", 0.8),
    ("0208020Z0", 0.9),
    ("0208020Y0", 0.5),
    ("0407010H0", 1.5),
    ("0403030Q0", 1.0),
    ("0403030E0", 0.6),
    ("0602010V0", 1.4),
    ("0301011R0", 1.2),
    ("0302000N0", 0.6),
    ("0603020T0", 0.4),
    ("0704010U0", 0.8),
    ("0411000D0", 0.3),
    ("0205052N0", 0.7),
    ("0204000R0", 0.4),
    ("0106040M0", 0.6),
    ("0106020M0", 0.5),
    ("0906040G0", 0.9),
    ("0408010AE", 0.3),
    ("0402010AB", 0.2),
    ("1001010J0", 0.4),
    ("0407020Q0", 0.2),
    ("0304010I0", 0.3),
    ("0601060D0", 0.2),
)
_ACUTE_SUBSTANCES = (
    "0501013B0",
    "0501050B0",
    "0501080W0",
    "0501130R0",
    "0501012G0",
    "0501030T0",
    "1001010J0",
    "0603020T0",
)

# ICD-10 three-character groups outside the HFRS list, for the non-frailty diagnoses.
_FILLER_ICD10 = (
    "I10",
    "E11",
    "I48",
    "E78",
    "I25",
    "J44",
    "K57",
    "Z86",
    "Z92",
    "M17",
    "C34",
    "Z96",
    "I50",
    "N40",
    "K80",
    "J45",
    "Z88",
    "Z95",
    "E03",
    "H26",
    "K21",
    "D50",
    "C18",
    "C50",
    "C61",
    "I21",
    "J20",
    "K35",
    "R07",
    "R10",
    "Z51",
    "M54",
    "Z99",
    "K29",
    "N30",
    "G47",
    "F41",
    "I26",
    "L40",
)
_COMMON_HFRS = {
    "N39": 4,
    "R29": 3,
    "W19": 4,
    "R26": 3,
    "E87": 3,
    "R41": 3,
    "F03": 3,
    "S72": 2,
    "J18": 4,
    "N17": 3,
    "I69": 2,
    "Z87": 3,
    "Z91": 3,
    "Z74": 2,
    "Z75": 2,
    "Z50": 2,
    "R54": 3,
    "K59": 2,
    "M79": 2,
    "R55": 3,
    "E86": 3,
    "L03": 2,
    "F05": 2,
    "Z22": 2,
}
_ADMIMETH = (
    "11",
    "12",
    "13",
    "21",
    "22",
    "23",
    "24",
    "25",
    "28",
    "2A",
    "2B",
    "2D",
    "31",
    "32",
    "81",
    "82",
    "83",
)
_ADMIMETH_P_ELECTIVE = np.array([0.75, 0.15, 0.10])
_ADMIMETH_P_EMERGENCY = np.array([0.62, 0.12, 0.05, 0.02, 0.03, 0.06, 0.05, 0.03, 0.02])
_ADMIMETH_P_OTHER = np.array([0.8, 0.15, 0.05])

_ASC_EVENT_TYPES = ("Request", "Assessment", "Service", "Review")
_ASC_SERVICES = (
    "Long Term Support: Nursing Care",
    "Long Term Support: Residential Care",
    "Long Term Support: Community",
    "Short Term Support: ST-Max",
    "Carer Support",
)
_ASC_REASONS = (
    "Physical Support: Personal Care Support",
    "Support with Memory and Cognition",
    "Mental Health Support",
    "Learning Disability Support",
    "Social Support",
    "Physical Support: Access and Mobility Only",
    "Social Support – Support for Social Isolation/Other",
)
_ASC_GENDER = ("Male", "Female", "Other", "Unknown")
_SEX_CODES = ("1", "2", "9", "X")


# --- small helpers ------------------------------------------------------------------------------


def _days(d: date) -> int:
    return (d - _EPOCH).days


def _years_before(d: date, k: int) -> date:
    """The same day and month k years earlier; 28 February when that day does not exist."""
    try:
        return d.replace(year=d.year - k)
    except ValueError:
        return date(d.year - k, 2, 28)


def _rng(seed: int, stream: int, part: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, part]))


def _cat(*parts: Any) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _str(values: np.ndarray) -> pa.Array:
    return pa.array(values).cast(pa.string())


def _take(values: Any, idx: np.ndarray) -> Any:
    if isinstance(values, np.ndarray):
        return values[idx]
    return values.take(pa.array(idx))


def _uniform_int(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A uniform integer in [lo, hi] per element (hi >= lo)."""
    span = (np.asarray(hi, np.int64) - lo + 1).clip(1)
    return (lo + np.floor(rng.random(len(span)) * span)).astype(np.int64)


def _weighted_pick(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    cum = np.cumsum(weights, dtype=np.float64)
    return np.searchsorted(cum, rng.random(size) * cum[-1], side="right").clip(0, len(cum) - 1)


def _top_k(rng: np.random.Generator, log_w: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Boolean (n, m): k[i] of m items per row, weighted, without replacement (Gumbel top-k)."""
    n, m = len(k), len(log_w)
    keys = log_w[None, :] + rng.gumbel(size=(n, m))
    kk = np.clip(k, 0, m)
    kth = np.take_along_axis(np.sort(keys, axis=1), (m - kk).clip(0, m - 1)[:, None], axis=1)
    return (keys >= kth) & (kk[:, None] > 0)


def _group_index(counts: np.ndarray) -> np.ndarray:
    """0, 1, ... within each group of a np.repeat(..., counts) expansion."""
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def _verhoeff(number: str) -> str:
    d = (
        (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
        (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
        (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
        (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
        (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
        (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
        (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
        (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
        (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
        (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
    )
    p = (
        (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
        (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
        (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
        (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
        (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
        (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
        (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
        (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
    )
    inv = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)
    c = 0
    for i, ch in enumerate(reversed(number)):
        c = d[c][p[(i + 1) % 8][int(ch)]]
    return str(inv[c])


def _nhs_check(stem9: np.ndarray) -> np.ndarray:
    """Modulus 11 check digit of 9-digit stems; 10 where the stem has no valid check digit."""
    total = np.zeros(len(stem9), np.int64)
    s = stem9.astype(np.int64)
    for weight in range(2, 11):
        total += (s % 10) * weight
        s //= 10
    check = 11 - total % 11
    return np.where(check == 11, 0, check)


# --- context ------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    persons: int
    extract_date: date
    d: int
    d_1y: int
    seed: int
    fmt: str
    faults: float
    lad_codes: list[str]
    lad_names: list[str]
    lsoa_codes: pa.Array
    lsoa_lad: np.ndarray
    lsoa_imd: np.ndarray
    lsoa_band_cum: np.ndarray
    lad_lsoa_start: np.ndarray
    lad_lsoa_size: np.ndarray
    person_lsoa: np.ndarray
    old_cum: np.ndarray
    dob_lo: np.ndarray
    dob_hi: np.ndarray
    thresholds: np.ndarray
    prac_codes: pa.Array
    prac_cum: np.ndarray
    lad_prac_lo: np.ndarray
    lad_prac_hi: np.ndarray
    lad_prac_start: np.ndarray
    lad_prac_size: np.ndarray
    nhs_a: int
    nhs_b: int
    client_a: int
    client_b: int
    unknown_nhs: np.ndarray
    deficit_log_w: np.ndarray
    poly_idx: int
    cog_idx: int
    efi_pool: pa.Array
    efi_start: np.ndarray
    efi_size: np.ndarray
    noise_pool: pa.Array
    noise_w: np.ndarray
    noise_unit: pa.Array
    noise_spec: np.ndarray
    frailty_codes: pa.Array
    bnf_pool: pa.Array
    repeat_log_w: np.ndarray
    n_repeat: int
    hfrs_codes: pa.Array
    hfrs_w: np.ndarray
    filler_codes: pa.Array
    kinds: dict[str, tuple[str, ...]]
    epikey_next: int = 300_000_000_001


def _latent_mean(age: np.ndarray, imd: np.ndarray) -> np.ndarray:
    return 0.075 * (age - 75.0) + 0.25 * (5.5 - imd) / 4.5


def _mortality(age: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Probability of dying in the three years before the extract date."""
    q = np.exp(-10.4 + 0.094 * age).clip(0.0003, 0.45)
    q = np.where(age < 1, 0.004, q) * np.exp(0.45 * eps) / 1.106
    return 1.0 - (1.0 - q.clip(0, 0.9)) ** 3


def _old_age_weights() -> np.ndarray:
    ages = np.arange(60, _MAX_AGE + 1)
    xs, ys = zip(*_OLD_AGE_ANCHORS, strict=True)
    return np.interp(ages, xs, ys)


def _build_context(
    persons: int, extract_date: date, seed: int, lads: list[str] | None, fmt: str, faults: float
) -> _Ctx:
    g = _rng(seed, 100)
    look = lsoa_lookup().sort_values(["lad19_code", "lsoa11_code"]).reset_index(drop=True)
    all_lads = look.drop_duplicates("lad19_code")[["lad19_code", "lad19_name"]]
    if lads is None:
        covered = list(all_lads["lad19_code"])
    else:
        known = set(all_lads["lad19_code"])
        unknown = [c for c in lads if c not in known]
        if unknown:
            raise ValueError(f"unknown LAD code(s): {', '.join(unknown)}")
        covered = sorted(set(lads))
    if not covered:
        raise ValueError("lads is empty")

    # Practices for every LAD (so a practice code does not depend on which LADs are covered).
    lad_pop = look.groupby("lad19_code", sort=True)["pop_total_2015"].sum()
    n_prac = np.clip(np.round(lad_pop.to_numpy() / 8500), 3, 120).astype(np.int64)
    letters = np.array(list("ABCDEFGHJKLMNPY"))
    draws = g.choice(len(letters) * 100_000, size=int(n_prac.sum()), replace=False)
    digits = np.char.zfill((draws % 100_000).astype(str), 5)
    prac_all = np.char.add(letters[draws // 100_000], digits)
    prac_w_all = g.lognormal(0.0, 0.5, size=len(prac_all))
    prac_start_all = np.concatenate([[0], np.cumsum(n_prac)[:-1]])
    lad_pos = {c: i for i, c in enumerate(lad_pop.index)}
    sel = [lad_pos[c] for c in covered]
    prac_codes, prac_w, starts, sizes = [], [], [], []
    for i in sel:
        starts.append(sum(len(x) for x in prac_codes))
        sl = slice(prac_start_all[i], prac_start_all[i] + n_prac[i])
        prac_codes.append(prac_all[sl])
        prac_w.append(prac_w_all[sl])
        sizes.append(n_prac[i])
    prac_cum = np.cumsum(np.concatenate(prac_w))
    lad_prac_start = np.array(starts, np.int64)
    lad_prac_size = np.array(sizes, np.int64)
    lad_prac_hi = prac_cum[lad_prac_start + lad_prac_size - 1]
    lad_prac_lo = np.where(lad_prac_start > 0, prac_cum[np.maximum(lad_prac_start - 1, 0)], 0.0)

    cov = look[look["lad19_code"].isin(set(covered))].reset_index(drop=True)
    lad_index = {c: i for i, c in enumerate(covered)}
    lsoa_lad = cov["lad19_code"].map(lad_index).to_numpy(np.int64)
    bands = cov[["pop_0_15_2015", "pop_16_59_2015", "pop_60plus_2015"]].to_numpy(np.float64)
    bands = np.maximum(bands, 0.0) + 1e-9
    band_cum = np.cumsum(bands / bands.sum(axis=1, keepdims=True), axis=1)[:, :2]
    lad_lsoa_start = np.searchsorted(lsoa_lad, np.arange(len(covered)))
    lad_lsoa_size = np.bincount(lsoa_lad, minlength=len(covered))
    pop = cov["pop_total_2015"].to_numpy(np.float64)
    counts = g.multinomial(persons, pop / pop.sum())
    person_lsoa = np.repeat(np.arange(len(cov), dtype=np.int32), counts)
    imd = cov["imd_decile"].to_numpy(np.float64)

    d = _days(extract_date)
    old_w = _old_age_weights()
    old_cum = np.cumsum(old_w) / old_w.sum()
    ages = np.arange(_MAX_AGE + 2)
    bounds = np.array([_days(_years_before(extract_date, int(a))) for a in ages], np.int64)
    dob_hi = bounds[:-1]
    dob_lo = bounds[1:] + 1

    # Calibrate the frailty latent so that the deficit count of people aged 65+ who are alive at
    # the extract date follows _COUNT_PMF, given the covered areas' old-age mix and deprivation.
    m = 400_000
    w65 = cov["pop_60plus_2015"].to_numpy(np.float64)
    li = _weighted_pick(g, w65, m)
    old65 = old_w[5:] / old_w[5:].sum()
    age_c = 65 + _weighted_pick(g, old65, m)
    eps = g.standard_normal(m)
    z = _latent_mean(age_c.astype(np.float64), imd[li]) + eps
    alive_w = 1.0 - _mortality(age_c.astype(np.float64), eps)
    order = np.argsort(z)
    cw = np.cumsum(alive_w[order])
    cw /= cw[-1]
    targets = np.cumsum(_COUNT_PMF)[:-1] / _COUNT_PMF.sum()
    thresholds = z[order][np.searchsorted(cw, targets)]

    # NHS numbers: an affine permutation of 8-digit prefixes 90000000-99999999 (never issued).
    def _coprime(x: int, mod_primes: tuple[int, ...]) -> int:
        while any(x % p == 0 for p in mod_primes):
            x += 1
        return x

    nhs_a = _coprime(int(g.integers(1_000_003, 9_000_000)), (2, 5))
    nhs_b = int(g.integers(0, 10_000_000))
    client_a = _coprime(int(g.integers(1_000_003, 8_000_000)), (2, 3, 5))
    client_b = int(g.integers(0, 9_000_000))
    pool = max(50, persons // 50)
    if persons + pool > 10_000_000:
        raise ValueError("persons must be at most 9,800,000")

    # eFI codes: only concepts that belong to exactly one deficit, so each event marks one deficit.
    deficits = efi_deficits()
    codes = efi_codes()
    per_code = codes.groupby("snomed_code")["deficit_id"].nunique()
    unique = codes[codes["snomed_code"].isin(per_code[per_code == 1].index)]
    deficit_ids = list(deficits["deficit_id"])
    efi_lists = [sorted(unique.loc[unique["deficit_id"] == i, "snomed_code"]) for i in deficit_ids]
    efi_size = np.array([len(x) for x in efi_lists], np.int64)
    efi_start = np.concatenate([[0], np.cumsum(efi_size)[:-1]])
    poly_idx = deficit_ids.index("polypharmacy")
    log_w = np.log(np.array([_DEFICIT_WEIGHT[i] for i in deficit_ids]))

    # Noise SNOMED vocabulary: observables with values, then synthetic concept ids (6-18 digits,
    # Verhoeff check digit, core or UK-extension style) that are in no eFI list.
    frailty_codes = pd.read_csv(
        reference_path("frailty/pcd_frailty_diagnosis_codes.csv"), dtype=str
    )["snomed_code"].tolist()
    taken = set(codes["snomed_code"]) | set(frailty_codes)
    taken |= {c[0] for c in _VALUE_CODES} | {_DIASTOLIC[0]}
    synthetic: list[str] = []
    while len(synthetic) < _N_SYNTHETIC_SNOMED:
        if g.random() < 0.7:
            item = str(int(g.integers(10 ** int(g.integers(3, 8)), 10**8)))
            cid = item + "00"
        else:
            item = str(int(g.integers(1, 10 ** int(g.integers(1, 9)))))
            cid = item + "100000010"
        cid += _verhoeff(cid)
        if cid not in taken and 6 <= len(cid) <= 18:
            taken.add(cid)
            synthetic.append(cid)
    value_codes = [c[0] for c in _VALUE_CODES]
    noise_codes = value_codes + synthetic + [_DIASTOLIC[0]]
    syn_w = 1.0 / (np.arange(len(synthetic)) + 15.0)
    value_share = sum(c[7] for c in _VALUE_CODES)
    noise_w = np.concatenate(
        [[c[7] for c in _VALUE_CODES], syn_w / syn_w.sum() * (1.0 - value_share), [0.0]]
    )
    spec = [c[2:7] for c in _VALUE_CODES] + [(0, 0, 0, 0, -1)] * len(synthetic) + [_DIASTOLIC[2:]]
    noise_spec = np.array(spec, np.float64)
    units = [c[1] for c in _VALUE_CODES] + [None] * len(synthetic) + [_DIASTOLIC[1]]

    bnf = [s + "AA" + st + st for s, _ in _REPEAT_SUBSTANCES for st in ("AA", "AB", "AC", "AD")]
    bnf += [s + "AA" + st + st for s in _ACUTE_SUBSTANCES for st in ("AA", "AB", "AC", "AD")]
    hfrs = pd.read_csv(reference_path("frailty/hfrs_icd10_weights.csv"), dtype={"icd10_3char": str})
    hfrs_list = sorted(hfrs["icd10_3char"])
    hfrs_w = np.array([_COMMON_HFRS.get(c, 1.0) for c in hfrs_list], np.float64)

    kinds = {}
    for src, ks in FAULT_KINDS.items():
        kinds[src] = tuple(k for k in ks if fmt != "parquet" or k != "malformed_row")

    return _Ctx(
        persons=persons,
        extract_date=extract_date,
        d=d,
        d_1y=_days(_years_before(extract_date, 1)),
        seed=seed,
        fmt=fmt,
        faults=faults,
        lad_codes=covered,
        lad_names=[str(all_lads.set_index("lad19_code").loc[c, "lad19_name"]) for c in covered],
        lsoa_codes=pa.array(cov["lsoa11_code"].to_numpy(str)),
        lsoa_lad=lsoa_lad,
        lsoa_imd=imd,
        lsoa_band_cum=band_cum,
        lad_lsoa_start=lad_lsoa_start,
        lad_lsoa_size=lad_lsoa_size,
        person_lsoa=person_lsoa,
        old_cum=old_cum,
        dob_lo=dob_lo,
        dob_hi=dob_hi,
        thresholds=thresholds,
        prac_codes=pa.array(np.concatenate(prac_codes)),
        prac_cum=prac_cum,
        lad_prac_lo=lad_prac_lo,
        lad_prac_hi=lad_prac_hi,
        lad_prac_start=lad_prac_start,
        lad_prac_size=lad_prac_size,
        nhs_a=nhs_a,
        nhs_b=nhs_b,
        client_a=client_a,
        client_b=client_b,
        unknown_nhs=np.empty(0, np.int64),
        deficit_log_w=log_w,
        poly_idx=poly_idx,
        cog_idx=deficit_ids.index("cognitive-problems"),
        efi_pool=pa.array([c for lst in efi_lists for c in lst], pa.string()),
        efi_start=efi_start,
        efi_size=efi_size,
        noise_pool=pa.array(noise_codes),
        noise_w=noise_w,
        noise_unit=pa.array(units, pa.string()),
        noise_spec=noise_spec,
        frailty_codes=pa.array(frailty_codes),
        bnf_pool=pa.array(bnf),
        repeat_log_w=np.log(np.array([w for _, w in _REPEAT_SUBSTANCES])),
        n_repeat=len(_REPEAT_SUBSTANCES),
        hfrs_codes=pa.array(hfrs_list),
        hfrs_w=hfrs_w,
        filler_codes=pa.array(list(_FILLER_ICD10)),
        kinds=kinds,
    )


def _nhs_numbers(ctx: _Ctx, g: np.ndarray) -> np.ndarray:
    """Valid, unique NHS numbers for global person indices (indices >= persons: unregistered)."""
    g = g.astype(np.int64)
    prefix = 90_000_000 + (ctx.nhs_a * g + ctx.nhs_b) % 10_000_000
    d9 = ((g * 2_654_435_761) >> 7) % 10
    check = _nhs_check(prefix * 10 + d9)
    d9 = np.where(check == 10, (d9 + 1) % 10, d9)
    # 9999999999 passes Modulus 11 but, one digit repeated, is no one's number: 9999999980
    d9 = np.where(prefix * 10 + d9 == 999_999_999, 8, d9)
    stem = prefix * 10 + d9
    return stem * 10 + _nhs_check(stem)


# --- persons ------------------------------------------------------------------------------------


def _persons(ctx: _Ctx, g0: int, g1: int) -> dict[str, np.ndarray]:
    rng = _rng(ctx.seed, 1, g0)
    n = g1 - g0
    g = g0 + rng.permutation(n).astype(np.int64)
    lsoa = ctx.person_lsoa[g].astype(np.int64)
    lad = ctx.lsoa_lad[lsoa]
    imd = ctx.lsoa_imd[lsoa]
    u = rng.random(n)
    bc = ctx.lsoa_band_cum[lsoa]
    band = (u >= bc[:, 0]).astype(np.int64) + (u >= bc[:, 1])
    a0 = rng.integers(0, 16, n)
    a1 = rng.integers(16, 60, n)
    a2 = 60 + np.searchsorted(ctx.old_cum, rng.random(n), side="right").clip(0, _MAX_AGE - 60)
    age = np.choose(band, [a0, a1, a2]).astype(np.int64)
    dob = _uniform_int(rng, ctx.dob_lo[age], ctx.dob_hi[age])
    agef = age.astype(np.float64)

    p_female = np.interp(agef, [0, 60, 70, 80, 90, 100], [0.49, 0.505, 0.52, 0.56, 0.66, 0.8])
    sex = (rng.random(n) < p_female).astype(np.int64)
    u = rng.random(n)
    sex = np.where(u < 0.0005, 2, np.where(u < 0.0015, 3, sex))

    eps = rng.standard_normal(n)
    z = _latent_mean(agef, imd) + eps
    dead = (rng.random(n) < _mortality(agef, eps)) & (dob < ctx.d - 30)
    death = np.maximum(ctx.d - rng.integers(1, 3 * 365, n), dob + 1)
    left = ~dead & (rng.random(n) < 0.01) & (dob < ctx.d - 30)
    left_date = np.maximum(ctx.d - rng.integers(1, 3 * 365, n), dob + 1)
    end = np.where(dead, death, np.where(left, left_date, ctx.d))

    n_def = np.where(
        age >= 65,
        np.searchsorted(ctx.thresholds, z, side="right"),
        np.minimum(
            rng.poisson(np.interp(agef, [0, 16, 40, 55, 64], [0.05, 0.3, 0.8, 1.8, 2.6])), 36
        ),
    )
    deficits = _top_k(rng, ctx.deficit_log_w, n_def)

    years = rng.random(n) * np.minimum(agef + 1, 40)
    start = np.clip(ctx.d - np.floor(years * 365.25).astype(np.int64), dob, end)
    start = np.maximum(start, np.minimum(dob + rng.integers(0, 43, n), end))
    mover = (rng.random(n) < 0.05) & (start - dob > 400)
    prev_start = np.maximum(dob, start - rng.integers(180, 20 * 365, n))
    prev_start = np.minimum(prev_start, start - 30)
    reg_end = np.where(
        dead, np.minimum(death + rng.integers(0, 29, n), ctx.d), np.where(left, left_date, _BLANK)
    )

    u = rng.random(n)
    prac = np.searchsorted(
        ctx.prac_cum,
        ctx.lad_prac_lo[lad] + u * (ctx.lad_prac_hi[lad] - ctx.lad_prac_lo[lad]),
        side="right",
    )
    first_prac = ctx.lad_prac_start[lad]
    prac = np.clip(prac, first_prac, first_prac + ctx.lad_prac_size[lad] - 1)
    same = rng.random(n) < 0.7
    prev_lsoa = np.where(
        same,
        ctx.lad_lsoa_start[lad] + np.floor(rng.random(n) * ctx.lad_lsoa_size[lad]),
        np.floor(rng.random(n) * len(ctx.lsoa_lad)),
    ).astype(np.int64)
    plad = ctx.lsoa_lad[prev_lsoa]
    prev_prac = ctx.lad_prac_start[plad] + np.floor(rng.random(n) * ctx.lad_prac_size[plad]).astype(
        np.int64
    )
    prev_prac = np.where(
        prev_prac == prac,
        ctx.lad_prac_start[plad]
        + (prev_prac - ctx.lad_prac_start[plad] + 1) % ctx.lad_prac_size[plad],
        prev_prac,
    )

    return {
        "g": g,
        "nhs": _nhs_numbers(ctx, g),
        "lsoa": lsoa,
        "lad": lad,
        "imd": imd,
        "age": age,
        "dob": dob,
        "sex": sex,
        "z": z,
        "dead": dead,
        "death": death,
        "left": left,
        "end": end,
        "n_def": n_def,
        "deficits": deficits,
        "start": start,
        "mover": mover,
        "prev_start": prev_start,
        "reg_end": reg_end,
        "prac": prac,
        "prev_lsoa": prev_lsoa,
        "prev_prac": prev_prac,
    }


# --- sources ------------------------------------------------------------------------------------


def _gp_patients(ctx: _Ctx, p: dict[str, np.ndarray]) -> dict[str, Any]:
    n = len(p["g"])
    rows = 1 + p["mover"].astype(np.int64)
    person = np.repeat(np.arange(n), rows)
    is_prev = np.zeros(len(person), bool)
    first = np.cumsum(rows) - rows
    is_prev[first[p["mover"]]] = True
    lsoa = np.where(is_prev, p["prev_lsoa"][person], p["lsoa"][person])
    prac = np.where(is_prev, p["prev_prac"][person], p["prac"][person])
    start = np.where(is_prev, p["prev_start"][person], p["start"][person])
    end = np.where(is_prev, p["start"][person], p["reg_end"][person])
    death = np.where(p["dead"][person], p["death"][person], _BLANK)
    return {
        "nhs_number": p["nhs"][person],
        "date_of_birth": p["dob"][person],
        "sex": pa.array(np.array(_SEX_CODES)[p["sex"][person]]),
        "lsoa11_code": ctx.lsoa_codes.take(pa.array(lsoa)),
        "practice_code": ctx.prac_codes.take(pa.array(prac)),
        "registration_start": start,
        "registration_end": end,
        "date_of_death": death,
    }


def _format_values(rng: np.random.Generator, spec: np.ndarray, age: np.ndarray) -> pa.Array:
    mean, sd, lo, hi, dec = spec.T
    scale = np.ones(len(age))
    child = age < 18
    # weight, height and BMI follow growth for children
    is_weight = (mean == 78.0) & child
    is_height = (mean == 168.0) & child
    is_bmi = (mean == 27.5) & child
    scale = np.where(is_weight, (3.5 + age * 3.6) / 78.0, scale)
    scale = np.where(is_height, (52 + age * 6.6) / 168.0, scale)
    scale = np.where(is_bmi, 0.65, scale)
    v = np.clip((mean + sd * rng.standard_normal(len(mean))) * scale, lo, hi)
    tenths = np.round(v * 10).astype(np.int64)
    whole = _str(np.round(v).astype(np.int64))
    dotted = pc.binary_join_element_wise(_str(tenths // 10), _str(tenths % 10), ".")
    return pc.if_else(pa.array(dec > 0), dotted, whole)


def _gp_events(ctx: _Ctx, p: dict[str, np.ndarray], g0: int) -> dict[str, Any]:
    rng = _rng(ctx.seed, 2, g0)
    d = ctx.d
    n = len(p["g"])
    dob, end, age = p["dob"], p["end"], p["age"]
    # eFI deficits: one or more events with a code from the deficit's own list
    coded = p["deficits"].copy()
    coded[:, ctx.poly_idx] = False
    pi, di = np.nonzero(coded)
    lower = np.maximum(dob[pi], d - 25 * 365)
    onset = _uniform_int(rng, lower, end[pi])
    reps = 1 + rng.poisson(0.7, len(pi))
    ep = np.repeat(pi, reps)
    ed = np.repeat(di, reps)
    e_on = np.repeat(onset, reps)
    first = _group_index(reps) == 0
    later = _uniform_int(rng, e_on, end[ep])
    e_date = np.where(first, e_on, later)
    e_code = ctx.efi_pool.take(
        pa.array(
            ctx.efi_start[ed] + np.floor(rng.random(len(ed)) * ctx.efi_size[ed]).astype(np.int64)
        )
    )

    # frailty diagnosis codes for some older people with mild or worse frailty
    cat = np.searchsorted([4.5, 8.5, 12.5], p["n_def"])
    fr = np.nonzero((age >= 65) & (cat > 0) & (rng.random(n) < 0.35))[0]
    f_date = _uniform_int(rng, np.maximum(dob[fr], d - 3 * 365), end[fr])
    f_code = ctx.frailty_codes.take(pa.array(cat[fr] - 1))

    # noise: other coded entries, some with a value
    mu = np.interp(
        age.astype(np.float64),
        [0, 4, 5, 15, 16, 39, 40, 59, 60, 74, 75, 105],
        [17, 17, 9, 9, 20, 20, 32, 32, 52, 52, 66, 66],
    )
    lo = np.maximum(dob, d - 10 * 365)
    frac = np.clip((end - lo + 1) / np.maximum(d - lo + 1, 1), 0, 1)
    k = rng.poisson(mu * frac * np.exp(0.2 * np.clip(p["z"], -2, 3)))
    npers = np.repeat(np.arange(n), k)
    ncode = _weighted_pick(rng, ctx.noise_w, len(npers))
    ndate = _uniform_int(rng, lo[npers], end[npers])
    systolic = ncode == 0
    extra_p = npers[systolic]
    extra_date = ndate[systolic]
    npers = np.concatenate([npers, extra_p])
    ndate = np.concatenate([ndate, extra_date])
    ncode = np.concatenate([ncode, np.full(len(extra_p), len(ctx.noise_spec) - 1)])
    spec = ctx.noise_spec[ncode]
    has_val = spec[:, 4] >= 0
    vals = _format_values(rng, spec[has_val], age[npers[has_val]].astype(np.float64))
    mask = pa.array(has_val)
    nvalue = pc.replace_with_mask(pa.nulls(len(npers), pa.string()), mask, vals)
    nunit = ctx.noise_unit.take(pa.array(ncode))

    person = np.concatenate([ep, fr, npers])
    dates = np.concatenate([e_date, f_date, ndate])
    code = pa.concat_arrays([e_code, f_code, ctx.noise_pool.take(pa.array(ncode))])
    value = pa.concat_arrays([pa.nulls(len(ep) + len(fr), pa.string()), nvalue])
    unit = pa.concat_arrays([pa.nulls(len(ep) + len(fr), pa.string()), nunit])
    order = np.lexsort((dates, person))
    idx = pa.array(order)
    return {
        "nhs_number": p["nhs"][person[order]],
        "event_date": dates[order].astype(np.int32),
        "snomed_code": code.take(idx),
        "value": value.take(idx),
        "unit": unit.take(idx),
    }


def _gp_medications(ctx: _Ctx, p: dict[str, np.ndarray], g0: int) -> dict[str, Any]:
    rng = _rng(ctx.seed, 3, g0)
    n = len(p["g"])
    age = p["age"].astype(np.float64)
    end, dob = p["end"], p["dob"]
    poly = p["deficits"][:, ctx.poly_idx]
    k_poly = 5 + np.minimum(rng.poisson(1.6, n), 9)
    lam = np.interp(age, [0, 18, 40, 55, 65, 80], [0.1, 0.25, 0.7, 1.5, 2.6, 3.2])
    k_other = np.minimum(rng.poisson(lam), 4)
    k = np.where(poly, k_poly, k_other)
    chosen = _top_k(rng, ctx.repeat_log_w, k)
    pi, si = np.nonzero(chosen)
    interval = np.array([28, 56, 84])[_weighted_pick(rng, np.array([0.6, 0.3, 0.1]), len(pi))]
    offset = np.floor(rng.random(len(pi)) * interval).astype(np.int64)
    med_start = end[pi] - rng.integers(90, 3650, len(pi))
    lower = np.maximum(np.maximum(med_start, end[pi] - 455), dob[pi])
    last = end[pi] - offset
    m = np.where(last >= lower, (last - lower) // interval + 1, 0)
    rp = np.repeat(pi, m)
    j = _group_index(m)
    r_date = np.repeat(last, m) - j * np.repeat(interval, m)
    strength = np.repeat(rng.integers(0, 4, len(pi)), m)
    r_bnf = np.repeat(si, m) * 4 + strength
    # acute courses, all dated before the one-year look-back window
    a_k = rng.poisson(np.interp(age, [0, 5, 20, 65, 90], [0.8, 0.4, 0.3, 0.6, 0.9]))
    ap = np.repeat(np.arange(n), a_k)
    a_lo = np.maximum(dob[ap], ctx.d - 5 * 365)
    a_hi = np.minimum(end[ap], ctx.d_1y - 1)
    keep = a_hi >= a_lo
    ap, a_lo, a_hi = ap[keep], a_lo[keep], a_hi[keep]
    a_date = _uniform_int(rng, a_lo, a_hi)
    a_bnf = (
        4 * ctx.n_repeat
        + rng.integers(0, len(_ACUTE_SUBSTANCES), len(ap)) * 4
        + rng.integers(0, 4, len(ap))
    )
    person = np.concatenate([rp, ap])
    dates = np.concatenate([r_date, a_date])
    bnf = np.concatenate([r_bnf, a_bnf])
    order = np.lexsort((bnf, dates, person))
    return {
        "nhs_number": p["nhs"][person[order]],
        "issue_date": dates[order].astype(np.int32),
        "bnf_code": ctx.bnf_pool.take(pa.array(bnf[order])),
    }


def _icd10_strings(rng: np.random.Generator, base: pa.Array) -> pa.Array:
    """Write three-character groups the way HES does: F001, R54X, I10-, F00.1, f001, G309D."""
    n = len(base)
    fourth_kind = _weighted_pick(rng, np.array([0.72, 0.2, 0.08]), n)
    digit = rng.integers(0, 10, n)
    fourth = np.where(fourth_kind == 0, digit.astype(str), np.where(fourth_kind == 1, "X", "-"))
    fourth_a = pa.array(fourth)
    plain = _cat(base, fourth_a)
    v = rng.random(n)
    dotted = pc.binary_join_element_wise(base, fourth_a, ".")
    fifth = pa.array(np.array(["D", "A", "0", "1"])[rng.integers(0, 4, n)])
    longer = _cat(base, fourth_a, fifth)
    is_digit = fourth_kind == 0
    out = pc.if_else(pa.array((v < 0.04) & is_digit), dotted, plain)
    out = pc.if_else(pa.array((v >= 0.04) & (v < 0.07) & is_digit), longer, out)
    return pc.if_else(pa.array((v >= 0.07) & (v < 0.09)), pc.utf8_lower(out), out)


def _hes_apc(ctx: _Ctx, p: dict[str, np.ndarray], g0: int) -> dict[str, Any]:
    rng = _rng(ctx.seed, 4, g0)
    d = ctx.d
    age = p["age"].astype(np.float64)
    z = p["z"]
    zpos = np.where(age >= 65, np.clip(z, -1, 4) + 1, 0.0)
    lo = np.maximum(p["dob"], d - 5 * 365)
    years = np.maximum(p["end"] - lo, 0) / 365.25
    rate = np.interp(
        age,
        [0, 1, 15, 16, 44, 45, 64, 65, 74, 75, 84, 85, 105],
        [0.15, 0.06, 0.06, 0.08, 0.08, 0.11, 0.11, 0.16, 0.16, 0.26, 0.26, 0.38, 0.38],
    )
    rate = rate * np.exp(0.3 * np.clip(z - _latent_mean(age, p["imd"]), -2, 3))
    female_fertile = (p["sex"] == 1) & (age >= 16) & (age <= 45)
    spells = rng.poisson(rate * years)
    sp = np.repeat(np.arange(len(age)), spells)
    adm = _uniform_int(rng, lo[sp], p["end"][sp])
    kind = _weighted_pick(rng, np.array([0.3, 0.65, 0.05]), len(sp))  # elective/emergency/other
    mat = female_fertile[sp] & (rng.random(len(sp)) < 0.35)
    emerg_los = rng.geometric(1.0 / (2.5 + 2.0 * zpos[sp] + 0.04 * np.maximum(age[sp] - 50, 0)))
    los = np.where(
        kind == 0, np.where(rng.random(len(sp)) < 0.6, 0, rng.geometric(0.4, len(sp))), emerg_los
    )
    los = np.where(mat, rng.integers(0, 4, len(sp)), np.minimum(los, 180))
    dis = adm + los
    dis = np.minimum(dis, np.where(p["dead"][sp], p["end"][sp], dis))
    meth = np.where(
        mat,
        12 + rng.integers(0, 2, len(sp)),
        np.where(
            kind == 0,
            _weighted_pick(rng, _ADMIMETH_P_ELECTIVE, len(sp)),
            np.where(
                kind == 1,
                3 + _weighted_pick(rng, _ADMIMETH_P_EMERGENCY, len(sp)),
                14 + _weighted_pick(rng, _ADMIMETH_P_OTHER, len(sp)),
            ),
        ),
    )
    n_ep = 1 + _weighted_pick(rng, np.array([0.75, 0.19, 0.06]), len(sp))
    n_ep = np.where(mat, 1, n_ep)
    # episode boundaries: sorted cut points within the stay
    ep_sp = np.repeat(np.arange(len(sp)), n_ep)
    j = _group_index(n_ep)
    stay = (dis - adm)[ep_sp]
    cut_hi = np.floor(rng.random(len(ep_sp)) * (stay + 1)).astype(np.int64)
    cut_hi = np.where(j == n_ep[ep_sp] - 1, stay, cut_hi)
    order = np.lexsort((cut_hi, ep_sp))
    cut_hi = cut_hi[order]
    cut_lo = np.where(j == 0, 0, np.concatenate([[0], cut_hi[:-1]]))
    a = adm[ep_sp]
    epistart = a + cut_lo
    epiend = a + cut_hi
    last_ep = j == n_ep[ep_sp] - 1
    finished = dis[ep_sp] <= d
    disdate = np.where(last_ep & finished, dis[ep_sp], _BLANK)
    epiend = np.where(epiend <= d, epiend, _BLANK)
    keep = epistart <= d
    ep_sp, epistart, epiend, disdate = ep_sp[keep], epistart[keep], epiend[keep], disdate[keep]
    person = sp[ep_sp]
    ne = len(person)
    # diagnoses
    lam = 0.8 + 0.05 * np.maximum(age[person] - 40, 0) + 0.5 * zpos[person]
    ndiag = np.minimum(1 + rng.poisson(lam), 20)
    p_h = np.clip(0.14 + 0.005 * np.maximum(age[person] - 60, 0) + 0.06 * zpos[person], 0.05, 0.65)
    flat_ep = np.repeat(np.arange(ne), ndiag)
    pos = _group_index(ndiag)
    is_h = rng.random(len(flat_ep)) < p_h[flat_ep]
    h_pick = _weighted_pick(rng, ctx.hfrs_w, len(flat_ep))
    f_pick = rng.integers(0, len(ctx.filler_codes), len(flat_ep))
    base = pc.if_else(
        pa.array(is_h),
        ctx.hfrs_codes.take(pa.array(h_pick)),
        ctx.filler_codes.take(pa.array(f_pick)),
    )
    codes = _icd10_strings(rng, base)
    out: dict[str, Any] = {
        "nhs_number": p["nhs"][person],
        "epikey": np.zeros(ne, np.int64),
        "admidate": adm[ep_sp].astype(np.int32),
        "epistart": epistart.astype(np.int32),
        "epiend": epiend.astype(np.int32),
        "disdate": disdate.astype(np.int32),
        "admimeth": pa.array(np.array(_ADMIMETH)[meth[ep_sp]]),
    }
    for q in range(20):
        sel = pos == q
        out[f"diag_4_{q + 1:02d}"] = pc.replace_with_mask(
            pa.nulls(ne, pa.string()), pa.array(ndiag > q), codes.filter(pa.array(sel))
        )
    order = np.lexsort((epistart, person))
    out = {c: _take(v, order) for c, v in out.items()}
    gaps = rng.integers(1, 40, ne)
    out["epikey"] = ctx.epikey_next + np.cumsum(gaps) - gaps
    ctx.epikey_next += int(gaps.sum())
    out["_ndiag"] = ndiag[order]
    return out


def _asc_cld(ctx: _Ctx, p: dict[str, np.ndarray], g0: int) -> dict[str, Any]:
    rng = _rng(ctx.seed, 5, g0)
    d = ctx.d
    n = len(p["g"])
    age = p["age"]
    end = p["end"]
    cat = np.searchsorted([4.5, 8.5, 12.5], p["n_def"])
    adult = age >= 18
    lo = np.maximum(p["dob"] + 18 * 366, d - 6 * 365)
    hi = end - 60
    ok = adult & (hi > lo)
    # trajectory: 0 none, 1 open long-term support, 2 ended long-term, 3 short-term only,
    # 4 request only, 5 carer support
    p_lts = np.where(age >= 65, np.array([0.02, 0.08, 0.20, 0.40])[cat], 0.006)
    p_end = np.where(age >= 65, 0.015, 0.002)
    p_st = np.where(age >= 65, 0.04, 0.003)
    p_req = np.where(age >= 65, 0.04, 0.005)
    p_car = np.where(age >= 65, 0.01, 0.004)
    cum = np.cumsum(np.stack([p_lts, p_end, p_st, p_req, p_car], axis=1), axis=1)
    u = rng.random(n)
    traj = np.where(ok, 1 + (u[:, None] >= cum).sum(axis=1), 0)
    traj = np.where(traj == 6, 0, traj)
    traj = np.where((traj == 1) & (end < d), 2, traj)

    cog = p["deficits"][:, ctx.cog_idx]
    r_old = np.where(
        cog & (rng.random(n) < 0.6),
        1,
        _weighted_pick(rng, np.array([0.7, 0.08, 0.05, 0.0, 0.03, 0.08, 0.06]), n),
    )
    r_young = _weighted_pick(rng, np.array([0.12, 0.0, 0.38, 0.45, 0.02, 0.03, 0.0]), n)
    reason = np.where(age >= 65, r_old, r_young)
    severe = cat >= 3
    lts_kind = np.where(
        severe,
        _weighted_pick(rng, np.array([0.3, 0.35, 0.35]), n),
        _weighted_pick(rng, np.array([0.05, 0.2, 0.75]), n),
    )

    r0 = _uniform_int(rng, lo, np.maximum(hi, lo))
    a = np.minimum(r0 + rng.integers(3, 41, n), end)
    a_end = np.minimum(a + rng.integers(0, 22, n), end)
    s = np.minimum(a_end + rng.integers(0, 29, n), end)
    rows: list[tuple[np.ndarray, int, np.ndarray, np.ndarray, int]] = []

    def add(mask: np.ndarray, etype: int, start: np.ndarray, stop: np.ndarray, svc: int) -> None:
        idx = np.nonzero(mask)[0]
        rows.append((idx, etype, start[idx], stop[idx], svc))

    has = traj > 0
    add(has, 0, r0, r0, -1)
    add(has & (traj != 4), 1, a, a_end, -1)
    for kind_ in range(3):
        open_stop = np.where(end < d, end, _BLANK)
        add((traj == 1) & (lts_kind == kind_), 2, s, open_stop, kind_)
        stop = np.minimum(s + rng.integers(30, 1500, n), np.minimum(end, d - 1))
        add((traj == 2) & (lts_kind == kind_), 2, s, np.maximum(stop, s), kind_)
    st_stop = s + rng.integers(14, 43, n)
    st_stop = np.where(st_stop > end, np.where(end < d, end, _BLANK), st_stop)
    add(traj == 3, 2, s, st_stop, 3)
    car_stop = s + rng.integers(0, 366, n)
    car_stop = np.where(car_stop > end, np.where(end < d, end, _BLANK), car_stop)
    add(traj == 5, 2, s, car_stop, 4)
    # annual reviews of long-term support
    n_rev = np.where(traj == 1, np.minimum((end - s) // 365, 5), 0).clip(0)
    rp = np.repeat(np.arange(n), n_rev)
    rj = _group_index(n_rev) + 1
    rev = np.minimum(s[rp] + rj * 365 + rng.integers(-30, 31, len(rp)), end[rp])
    rows.append((rp, 3, rev, rev, -1))

    person = np.concatenate([r[0] for r in rows]).astype(np.int64)
    etype = np.concatenate([np.full(len(r[0]), r[1]) for r in rows])
    start = np.concatenate([r[2] for r in rows])
    stop = np.concatenate([r[3] for r in rows])
    svc = np.concatenate([np.full(len(r[0]), r[4]) for r in rows])
    order = np.lexsort((etype, start, person))
    person, etype, start, stop, svc = (x[order] for x in (person, etype, start, stop, svc))
    svc_arr = pc.replace_with_mask(
        pa.nulls(len(svc), pa.string()),
        pa.array(svc >= 0),
        pa.array(np.array(_ASC_SERVICES)[svc[svc >= 0]], pa.string()),
    )
    client = 1_000_000 + (ctx.client_a * p["g"][person] + ctx.client_b) % 9_000_000
    gender = np.array([0, 1, 2, 3])[p["sex"][person]]
    return {
        "LA_Code": np.asarray(p["lad"][person]),  # LAD index; replaced by the code per file
        "NHS_Number": p["nhs"][person],
        "Client_ID": _str(client),
        "Gender": pa.array(np.array(_ASC_GENDER)[gender]),
        "Event_Type": pa.array(np.array(_ASC_EVENT_TYPES)[etype]),
        "Event_Start_Date": start.astype(np.int32),
        "Event_End_Date": stop.astype(np.int32),
        "Service_Type": svc_arr,
        "Primary_Support_Reason": pa.array(np.array(_ASC_REASONS)[reason[person]]),
    }


# --- formatting and faults ----------------------------------------------------------------------


def _fmt_dates(values: np.ndarray, uk: bool) -> pa.Array:
    arr = pa.array(values.astype(np.int32), pa.int32(), mask=values == _BLANK).cast(pa.date32())
    if uk:
        return pc.strftime(arr, format="%d/%m/%Y")
    return arr.cast(pa.string())


def _fmt_column(name: str, values: Any, uk: bool) -> pa.Array:
    if not isinstance(values, np.ndarray):
        return values
    if name in _DATE_COLS:
        return _fmt_dates(values, uk)
    return pa.array(values.astype(np.int64), pa.int64(), mask=values == _NO_NHS).cast(pa.string())


def _needs_quotes(col: pa.Array) -> pa.Array:
    if pc.any(pc.match_substring_regex(col, '[,"\\n\\r]')).as_py():
        quoted = _cat('"', pc.replace_substring(col, '"', '""'), '"')
        return pc.if_else(pc.match_substring_regex(col, '[,"\\n\\r]'), quoted, col)
    return col


def _replace(col: pa.Array, mask: np.ndarray, values: pa.Array | list) -> pa.Array:
    if not isinstance(values, pa.Array):
        values = pa.array(values, pa.string())
    return pc.replace_with_mask(col, pa.array(mask), values.cast(pa.string()))


class _Edits:
    """Replacements of written values, gathered per column and applied in one pass."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.parts: dict[str, list[tuple[np.ndarray, pa.Array]]] = {}

    def add(self, col: str, mask: np.ndarray, values: pa.Array) -> None:
        self.parts.setdefault(col, []).append((np.nonzero(mask)[0], values.cast(pa.string())))

    def apply(self, cols: dict[str, pa.Array]) -> None:
        for col, parts in self.parts.items():
            idx = np.concatenate([i for i, _ in parts])
            values = pa.concat_arrays([v for _, v in parts])
            mask = np.zeros(self.n, bool)
            mask[idx] = True
            order = pa.array(np.argsort(idx, kind="stable"))
            cols[col] = pc.replace_with_mask(cols[col], pa.array(mask), values.take(order))


class _Background:
    """One writer thread: compression and file writes overlap generation, in submission order."""

    def __init__(self, depth: int = 4) -> None:
        self._queue: queue.Queue[Callable[[], object] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="synth-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if self._error is None:
                try:
                    job()
                except BaseException as exc:  # re-raised in the generating thread
                    self._error = exc

    def submit(self, job: Callable[[], object]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(job)

    def finish(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


class _Sink:
    """One output file: written chunk by chunk, with its row and fault counts."""

    def __init__(
        self,
        out_dir: Path,
        rel: str,
        columns: list[str],
        fmt: str,
        bg: _Background,
        *,
        encoding: str = "utf-8",
        header: list[str] | None = None,
        hold_last: bool = False,
    ) -> None:
        self.bg = bg
        self.rel = rel
        self.fmt = fmt
        self.columns = columns
        self.encoding = encoding
        self.rows = 0
        self.faults: dict[str, int] = {}
        self.header = header or columns
        self._held = b""
        self._hold = hold_last
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            self._schema = pa.schema([(c, pa.string()) for c in columns])
            self._pq = pq.ParquetWriter(path, self._schema, compression="zstd")
            self._fh: BinaryIO | None = None
            return
        raw = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._raw = raw
        self._fh = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
            if fmt == "csv.gz"
            else raw
        )
        # "utf-8-sig" writes a byte-order mark before the header; the rows are plain UTF-8
        self._fh.write((",".join(self.header) + "\n").encode(encoding))

    def count(self, kinds: tuple[str, ...], counts: np.ndarray) -> None:
        for k, c in zip(kinds, counts, strict=True):
            self.faults[k] = self.faults.get(k, 0) + int(c)

    def write(self, cols: list[pa.Array], malformed: np.ndarray | None = None) -> None:
        n = len(cols[0]) if cols else 0
        if n == 0:
            return
        self.rows += n
        if self.fmt == "parquet":
            table = pa.Table.from_arrays(cols, schema=self._schema)
            self.bg.submit(lambda: self._pq.write_table(table))
            return
        line = pc.binary_join_element_wise(*cols, ",", null_handling="replace", null_replacement="")
        if malformed is not None and malformed.any():
            # half lose their last field, half gain an extra one
            idx = np.nonzero(malformed)[0]
            short = idx[::2]
            longer = idx[1::2]
            if len(short):
                part = [c.take(pa.array(short)) for c in cols[:-1]]
                vals = (
                    pc.binary_join_element_wise(
                        *part, ",", null_handling="replace", null_replacement=""
                    )
                    if len(part) > 1
                    else part[0].fill_null("")
                )
                m = np.zeros(n, bool)
                m[short] = True
                line = _replace(line, m, vals)
            if len(longer):
                m = np.zeros(n, bool)
                m[longer] = True
                line = _replace(line, m, _cat(line.filter(pa.array(m)), ",see notes"))
        line = _cat(line, "\n")
        offsets = np.frombuffer(line.buffers()[1], np.int32)[line.offset : line.offset + n + 1]
        data = line.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]
        if self.encoding == "cp1252":
            data = data.decode("utf-8").encode("cp1252")
        if self._hold:
            data = self._held + data
            cut = data.rfind(b"\n", 0, len(data) - 1) + 1
            data, self._held = data[:cut], data[cut:]
        fh = self._fh
        self.bg.submit(lambda: fh.write(data))

    def close(self, truncate: bool = False) -> None:
        if self.fmt == "parquet":
            self.bg.submit(self._pq.close)
            return
        held = self._held
        if truncate and held:
            first = held.index(b",")
            held = held[: first + 5]  # cut inside the second field, no newline
            self.faults["truncated_last_line"] = 1
        fh, raw = self._fh, self._raw

        def finish() -> None:
            fh.write(held)
            if fh is not raw:
                fh.close()
            raw.close()

        self.bg.submit(finish)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows": self.rows, "faults": dict(self.faults)}
        if self.fmt != "parquet":
            out["encoding"] = self.encoding
            out["header"] = list(self.header)
        return out


def _emit(
    ctx: _Ctx,
    src: str,
    typed: dict[str, Any],
    sink: _Sink,
    rng: np.random.Generator,
    *,
    force_last_clean: bool = False,
    extra: str | None = None,
) -> None:
    """Apply row faults to one chunk of a source and append it to its file."""
    kinds = ctx.kinds[src]
    cols_all = COLUMNS[src]
    nhs_col = "NHS_Number" if src == "asc_cld" else "nhs_number"
    n = len(typed[nhs_col])
    kind = np.full(n, -1, np.int64)
    if ctx.faults > 0 and n:
        k = np.floor(rng.random(n) / ctx.faults).astype(np.int64)
        kind = np.where(k < len(kinds), k, -1)
        if force_last_clean:
            kind[-1] = -1
    code = {name: i for i, name in enumerate(kinds)}
    ins = np.isin(kind, [code[k] for k in _INSERTING if k in code])
    if ins.any():
        take = np.repeat(np.arange(n), 1 + ins)
        pos = np.arange(n) + np.cumsum(ins) - ins
        new = np.full(len(take), -1, np.int64)
        new[pos[~ins]] = kind[~ins]
        new[pos[ins] + 1] = kind[ins]
        typed = {c: _take(v, take) for c, v in typed.items()}
        kind = new
        n = len(take)
    sink.count(
        kinds,
        np.bincount(kind[kind >= 0], minlength=len(kinds)) if n else np.zeros(len(kinds), np.int64),
    )

    def mask(name: str) -> np.ndarray:
        return kind == code[name] if name in code else np.zeros(n, bool)

    uk = src == "asc_cld"
    fcol = _FAULT_DATE_COL.get(src)
    date_cols = [c for c in cols_all if c in _DATE_COLS]
    typed = dict(typed)
    # faults on typed values
    m = mask("unknown_person")
    if m.any():
        nhs = typed[nhs_col].copy()
        nhs[m] = ctx.unknown_nhs[rng.integers(0, len(ctx.unknown_nhs), int(m.sum()))]
        typed[nhs_col] = nhs
    m = mask("future_date")
    if m.any():
        shift = ctx.d - typed[fcol][m].astype(np.int64) + rng.integers(1, 731, int(m.sum()))
        for c in date_cols:
            v = typed[c].copy()
            sub = v[m].astype(np.int64)
            v[m] = np.where(sub == _BLANK, _BLANK, sub + shift).astype(v.dtype)
            typed[c] = v
    m = mask("pre_1900_date")
    if m.any():
        v = typed[fcol].copy()
        v[m] = rng.integers(_D1850, _D1899 + 1, int(m.sum()))
        typed[fcol] = v
    m = mask("conflicting_identity")
    if m.any():
        v = typed["date_of_birth"].copy()
        v[m] = np.maximum(v[m] - rng.integers(30, 3650, int(m.sum())), _D1900)
        typed["date_of_birth"] = v

    cols = {c: _fmt_column(c, typed[c], uk) for c in cols_all if c in typed}
    edits = _Edits(n)
    nhs_int = typed[nhs_col]
    # faults on written values
    m = mask("nhs_spaces")
    if m.any():
        s = cols[nhs_col].filter(pa.array(m))
        parts = [pc.utf8_slice_codeunits(s, a, b) for a, b in ((0, 3), (3, 6), (6, 10))]
        hyph = rng.random(int(m.sum())) < 0.3
        vals = pc.if_else(
            pa.array(hyph),
            pc.binary_join_element_wise(*parts, "-"),
            pc.binary_join_element_wise(*parts, " "),
        )
        edits.add(nhs_col, m, vals)
    m = mask("nhs_bad_check")
    if m.any():
        v = nhs_int[m]
        bad = v // 10 * 10 + (v % 10 + rng.integers(1, 10, len(v))) % 10
        edits.add(nhs_col, m, _str(bad))
    m = mask("nhs_short")
    if m.any():
        v = nhs_int[m]
        bad = np.where(rng.random(len(v)) < 0.5, v // 10, v * 10 + rng.integers(0, 10, len(v)))
        edits.add(nhs_col, m, _str(bad))
    for name in ("nhs_blank", "asc_blank_nhs"):
        m = mask(name)
        if m.any():
            edits.add(nhs_col, m, pa.nulls(int(m.sum()), pa.string()))
    m = mask("iso_as_uk_date")
    if m.any():
        edits.add(fcol, m, _fmt_dates(typed[fcol][m], True))
    m = mask("unparseable_date")
    if m.any():
        year = _str(np.clip(1970 + typed[fcol][m].astype(np.int64) // 365, 1900, 2100))
        variant = rng.integers(0, 3, int(m.sum()))
        a_, b_ = ("45/13/", "30/02/") if uk else ("-13-45", "-02-30")
        bad1 = _cat(a_, year) if uk else _cat(year, a_)
        bad2 = _cat(b_, year) if uk else _cat(year, b_)
        vals = pc.if_else(
            pa.array(variant == 0),
            bad1,
            pc.if_else(pa.array(variant == 1), bad2, pa.scalar("not a date")),
        )
        edits.add(fcol, m, vals)
    m = mask("blank_lsoa")
    if m.any():
        edits.add("lsoa11_code", m, pa.nulls(int(m.sum()), pa.string()))
    m = mask("unknown_lsoa")
    if m.any():
        vals = _cat(
            "E0199", pa.array(np.char.zfill(rng.integers(0, 10_000, int(m.sum())).astype(str), 4))
        )
        edits.add("lsoa11_code", m, vals)
    m = mask("bad_sex_code")
    if m.any():
        vals = np.array(["M", "F", "0", "U"])[rng.integers(0, 4, int(m.sum()))]
        edits.add("sex", m, pa.array(vals))
    m = mask("bad_snomed")
    if m.any():
        s = cols["snomed_code"].filter(pa.array(m))
        vals = pc.if_else(
            pa.array(rng.random(len(s)) < 0.5),
            pc.utf8_replace_slice(s, start=2, stop=3, replacement="O"),
            pc.utf8_slice_codeunits(s, 0, 5),
        )
        edits.add("snomed_code", m, vals)
    m = mask("hes_sentinel")
    if m.any():
        idx = np.nonzero(m)[0]
        which = rng.integers(0, 3, len(idx))
        val = np.array(["1800-01-01", "1801-01-01"])[rng.integers(0, 2, len(idx))]
        for w, c in enumerate(("admidate", "epiend", "disdate")):
            mm = np.zeros(n, bool)
            mm[idx[which == w]] = True
            if mm.any():
                edits.add(c, mm, pa.array(val[which == w]))
    m = mask("bad_icd10")
    if m.any():
        idx = np.nonzero(m)[0]
        posn = np.floor(rng.random(len(idx)) * typed["_ndiag"][idx]).astype(np.int64)
        val = np.array(["XX", "9ZZ", "R5", "1234"])[rng.integers(0, 4, len(idx))]
        for q in range(20):
            mm = np.zeros(n, bool)
            mm[idx[posn == q]] = True
            if mm.any():
                c = f"diag_4_{q + 1:02d}"
                edits.add(c, mm, pa.array(val[posn == q]))
    m = mask("conflicting_epikey")
    if m.any():
        s = cols["diag_4_01"].filter(pa.array(m))
        vals = pc.if_else(pc.equal(s, "R296"), pa.scalar("I509"), pa.scalar("R296"))
        edits.add("diag_4_01", m, vals)

    edits.apply(cols)
    out = [cols[c] for c in cols_all]
    if uk or src == "fingertips":
        out = [_needs_quotes(c) if ctx.fmt != "parquet" else c for c in out]
    if extra is not None:
        out.append(pa.array(np.full(n, extra)))
    sink.write(out, mask("malformed_row") if "malformed_row" in code else None)


def _header_variant(columns: list[str], shift: int = 0) -> list[str]:
    styles = (str.upper, lambda s: f" {s} ", str.lower, lambda s: s.title() + " ")
    return [styles[(i + shift) % len(styles)](c) for i, c in enumerate(columns)]


# --- fingertips ---------------------------------------------------------------------------------

_INDICATORS = (
    # id, name, age, kind, England value, deprivation effect, polarity
    (
        22401,
        "Emergency hospital admissions due to falls in people aged 65 and over",
        "65+ yrs",
        "dsr",
        2100.0,
        0.18,
        "low",
    ),
    (41401, "Hip fractures in people aged 65 and over", "65+ yrs", "dsr", 550.0, 0.10, "low"),
    (
        90638,
        "Social Isolation: percentage of adult social care users who have as much social "
        "contact as they would like (65+ yrs)",
        "65+ yrs",
        "pct",
        41.0,
        -0.10,
        "high",
    ),
    (
        92949,
        "Estimated dementia diagnosis rate (aged 65 and over)",
        "65+ yrs",
        "pct",
        63.0,
        0.05,
        "none",
    ),
)


def _num(x: float | None, digits: int = 4) -> str | None:
    if x is None:
        return None
    if digits == 0:
        return str(int(round(x)))
    s = f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def _fingertips(ctx: _Ctx) -> dict[str, list]:
    rng = _rng(ctx.seed, 101)
    look = lsoa_lookup()
    look = look.assign(rank_x_pop=look["imd_rank"] * look["pop_total_2015"])
    lad = look.groupby("lad19_code", sort=True).agg(
        name=("lad19_name", "first"),
        pop60=("pop_60plus_2015", "sum"),
        pop=("pop_total_2015", "sum"),
        rank_x_pop=("rank_x_pop", "sum"),
    )
    lad["rank"] = lad["rank_x_pop"] / lad["pop"]
    n_lsoa = len(look)
    dep = 1.0 - 2.0 * lad["rank"].to_numpy() / n_lsoa  # -1 least .. +1 most deprived
    pop65 = lad["pop60"].to_numpy() * 0.8
    codes = list(lad.index)
    covered = set(ctx.lad_codes)
    # latest published periods: the financial year ending in the year before the extract, and the
    # calendar year before it
    year = ctx.extract_date.year - 2
    rows: dict[str, list] = {c: [] for c in COLUMNS["fingertips"]}
    z = 1.959964
    z3 = 3.090232

    def add(
        ind: tuple,
        area: str,
        name: str,
        atype: str,
        period: str,
        sortable: str,
        value: float | None,
        count: float | None,
        denom: float | None,
        lo95: float | None,
        hi95: float | None,
        lo99: float | None,
        hi99: float | None,
        note: str | None,
        trend: str,
        compared: str,
    ) -> None:
        parent = (None, None) if area == "E92000001" else ("E92000001", "England")
        vals = [
            str(ind[0]),
            ind[1],
            parent[0],
            parent[1],
            area,
            name,
            atype,
            "Persons",
            ind[2],
            None,
            None,
            period,
            _num(value),
            _num(lo95),
            _num(hi95),
            _num(lo99),
            _num(hi99),
            _num(count, 0),
            _num(denom, 0),
            note,
            trend,
            compared,
            "Not compared",
            sortable,
            None,
            "Not compared",
        ]
        for c, v in zip(COLUMNS["fingertips"], vals, strict=True):
            rows[c].append(v)

    for ind in _INDICATORS:
        iid, _, _, kind, eng, beta, polarity = ind
        effect = np.exp(beta * dep + 0.08 * rng.standard_normal(len(codes)))
        for k in range(2, -1, -1):
            if kind == "dsr" or iid == 90638:
                period, sortable = f"{year - k}/{(year - k + 1) % 100:02d}", f"{year - k}0000"
            else:
                period, sortable = f"{year + 1 - k}", f"{year + 1 - k}0000"
            trend_t = 1.0 + 0.02 * (2 - k) * (1 if polarity == "low" else -1)
            if kind == "dsr":
                denom = pop65 * (1.0 + 0.01 * (2 - k))
            else:
                denom = np.where(iid == 90638, np.maximum(pop65 * 0.0025, 5), pop65 * 0.072)
            denom = np.round(denom * rng.uniform(0.97, 1.03, len(codes)))
            value = eng * effect * trend_t * rng.uniform(0.97, 1.03, len(codes))
            if kind == "pct":
                value = np.clip(value, 5, 95)
            count = np.round(value * denom / (1e5 if kind == "dsr" else 100.0))
            e_count = count.sum()
            e_den = denom.sum()
            e_val = e_count / e_den * (1e5 if kind == "dsr" else 100.0)
            areas = [("E92000001", "England", "England", e_val, e_count, e_den)]
            for i, c in enumerate(codes):
                if c in covered:
                    areas.append(
                        (
                            c,
                            str(lad["name"].iloc[i]),
                            "Districts & UAs (from Apr 2019)",
                            float(value[i]),
                            float(count[i]),
                            float(denom[i]),
                        )
                    )
            for area, name, atype, v, cnt, den in areas:
                suppressed = area != "E92000001" and (cnt < 10 or rng.random() < 0.02)
                if suppressed:
                    add(
                        ind,
                        area,
                        name,
                        atype,
                        period,
                        sortable,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        "Value suppressed for disclosure control",
                        "Cannot be calculated",
                        "Not compared",
                    )
                    continue
                if kind == "dsr":
                    se = v / np.sqrt(max(cnt, 1.0))
                    ci = (max(v - z * se, 0), v + z * se, max(v - z3 * se, 0), v + z3 * se)
                else:
                    pr = v / 100.0
                    ci = []
                    for zz in (z, z3):
                        centre = (pr + zz * zz / (2 * den)) / (1 + zz * zz / den)
                        half = (
                            zz
                            * np.sqrt(pr * (1 - pr) / den + zz * zz / (4 * den * den))
                            / (1 + zz * zz / den)
                        )
                        ci += [100 * (centre - half), 100 * (centre + half)]
                    ci = (ci[0], ci[1], ci[2], ci[3])
                if area == "E92000001":
                    compared = "Not compared"
                elif ci[0] > e_val:
                    compared = {"low": "Worse", "high": "Better"}.get(polarity, "Higher") + (
                        " 95%" if polarity != "none" else ""
                    )
                elif ci[1] < e_val:
                    compared = {"low": "Better", "high": "Worse"}.get(polarity, "Lower") + (
                        " 95%" if polarity != "none" else ""
                    )
                else:
                    compared = "Similar"
                trend = (
                    "Cannot be calculated"
                    if k
                    else str(
                        rng.choice(
                            ["No significant change", "Increasing", "Decreasing"],
                            p=[0.7, 0.15, 0.15],
                        )
                    )
                )
                add(
                    ind,
                    area,
                    name,
                    atype,
                    period,
                    sortable,
                    v,
                    cnt,
                    den,
                    ci[0],
                    ci[1],
                    ci[2],
                    ci[3],
                    None,
                    trend,
                    compared,
                )
    return rows


# --- driver -------------------------------------------------------------------------------------


def generate(
    out_dir: Path,
    persons: int,
    extract_date: date,
    seed: int,
    lads: list[str] | None = None,
    fmt: str = "csv",
    faults: float = 0.0,
    progress: bool = False,
) -> dict:
    """Write synthetic raw extracts of all six sources and return their description.

    Args:
        out_dir: root folder; files go to `out_dir/<source>/<source>_<YYYY-MM-DD>.<ext>` (asc_cld:
            one `asc_cld_<LAD>_<YYYY-MM-DD>.<ext>` per covered LAD).
        persons: number of synthetic persons (1 to 9,800,000).
        extract_date: the extract date; no clean date is after it.
        seed: non-negative integer; the same arguments give byte-identical files.
        lads: lower-tier local authority 2019 codes to cover; None means all 317.
        fmt: "csv", "csv.gz" or "parquet" (parquet: all columns as strings, blank as null).
        faults: rate of each row fault kind among eligible rows (at most one fault per row);
            at most 1 / 14. File-level faults are applied to CSV files when faults > 0.
        progress: show a rich progress bar over chunks.

    Returns:
        The content of `out_dir/_synth.json`: the parameters and, per file (path relative to
        out_dir), the data rows written and the count of each injected fault kind.
    """
    if not isinstance(extract_date, date) or isinstance(extract_date, datetime):
        raise TypeError("extract_date must be a datetime.date")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    if not isinstance(persons, int) or persons < 1:
        raise ValueError("persons must be a positive integer")
    if not isinstance(seed, int) or seed < 0:
        raise ValueError("seed must be a non-negative integer")
    if not 0.0 <= faults <= 1.0 / _MAX_KINDS:
        raise ValueError(f"faults must be between 0 and {1.0 / _MAX_KINDS:.4f}")
    out_dir = Path(out_dir)
    ctx = _build_context(persons, extract_date, seed, lads, fmt, float(faults))
    pool = max(50, persons // 50)
    ctx.unknown_nhs = _nhs_numbers(ctx, np.arange(persons, persons + pool))
    stamp = extract_date.isoformat()
    csv = fmt != "parquet"
    file_faults = csv and faults > 0

    bg = _Background()
    sinks: dict[str, _Sink] = {}
    for src in ("gp_patients", "gp_events", "gp_medications", "hes_apc"):
        columns = list(COLUMNS[src])
        if file_faults and "extra_column" in FILE_FAULTS.get(src, ()):
            columns.append("extract_batch")
        header = columns
        if file_faults and "header_variants" in FILE_FAULTS.get(src, ()):
            header = _header_variant(columns)
        sink = _Sink(
            out_dir,
            f"{src}/{src}_{stamp}.{fmt}",
            columns,
            fmt,
            bg,
            header=header,
            hold_last=file_faults and src == "gp_events",
        )
        sink.count(ctx.kinds[src], np.zeros(len(ctx.kinds[src]), np.int64))
        if file_faults:
            for ff in FILE_FAULTS.get(src, ()):
                sink.faults[ff] = 0 if ff == "truncated_last_line" else 1
        sinks[src] = sink
    asc_sinks: dict[int, _Sink] = {}
    asc_done: dict[str, dict] = {}

    def open_asc(i: int) -> _Sink:
        code = ctx.lad_codes[i]
        enc = "utf-8-sig" if i % 2 == 0 else "cp1252"
        header = list(COLUMNS["asc_cld"])
        variant = file_faults and i % 3 == 1
        if variant:
            header = _header_variant(header, shift=i)
        sink = _Sink(
            out_dir,
            f"asc_cld/asc_cld_{code}_{stamp}.{fmt}",
            COLUMNS["asc_cld"],
            fmt,
            bg,
            encoding=enc,
            header=header,
        )
        sink.count(ctx.kinds["asc_cld"], np.zeros(len(ctx.kinds["asc_cld"]), np.int64))
        if variant:
            sink.faults["header_variants"] = 1
        return sink

    def close_asc(upto: int) -> None:
        for i in sorted(k for k in asc_sinks if k < upto):
            s = asc_sinks.pop(i)
            s.close()
            asc_done[s.rel] = s.describe()

    next_lad = 0
    chunks = [(g0, min(g0 + CHUNK_PERSONS, persons)) for g0 in range(0, persons, CHUNK_PERSONS)]
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=False)
        bar.start()
        task = bar.add_task("synthetic extracts", total=len(chunks))
    try:
        for ci, (g0, g1) in enumerate(chunks):
            p = _persons(ctx, g0, g1)
            frng = _rng(seed, 10, g0)
            _emit(ctx, "gp_patients", _gp_patients(ctx, p), sinks["gp_patients"], frng)
            _emit(
                ctx,
                "gp_events",
                _gp_events(ctx, p, g0),
                sinks["gp_events"],
                frng,
                force_last_clean=file_faults,
            )
            _emit(
                ctx,
                "gp_medications",
                _gp_medications(ctx, p, g0),
                sinks["gp_medications"],
                frng,
                extra=f"{extract_date:%Y%m%d}-{ci + 1:04d}" if file_faults else None,
            )
            _emit(ctx, "hes_apc", _hes_apc(ctx, p, g0), sinks["hes_apc"], frng)
            asc = _asc_cld(ctx, p, g0)
            lad_of = asc.pop("LA_Code")
            lo_lad = int(ctx.lsoa_lad[ctx.person_lsoa[g0]])
            hi_lad = int(ctx.lsoa_lad[ctx.person_lsoa[g1 - 1]])
            close_asc(lo_lad)
            for i in range(next_lad, hi_lad + 1):
                asc_sinks[i] = open_asc(i)
            next_lad = max(next_lad, hi_lad + 1)
            for i in range(lo_lad, hi_lad + 1):
                sel = np.nonzero(lad_of == i)[0]
                part = {c: _take(v, sel) for c, v in asc.items()}
                part["LA_Code"] = pa.array(np.full(len(sel), ctx.lad_codes[i]), pa.string())
                _emit(ctx, "asc_cld", {c: part[c] for c in COLUMNS["asc_cld"]}, asc_sinks[i], frng)
            if bar is not None:
                bar.advance(task)
        for i in range(next_lad, len(ctx.lad_codes)):
            asc_sinks[i] = open_asc(i)
        close_asc(len(ctx.lad_codes))
        files: dict[str, dict] = {}
        for src, sink in sinks.items():
            sink.close(truncate=file_faults and src == "gp_events")
            files[sink.rel] = sink.describe()
        files.update({k: asc_done[k] for k in sorted(asc_done)})
        ft = _fingertips(ctx)
        sink = _Sink(
            out_dir, f"fingertips/fingertips_{stamp}.{fmt}", COLUMNS["fingertips"], fmt, bg
        )
        cols = [pa.array(ft[c], pa.string()) for c in COLUMNS["fingertips"]]
        if csv:
            cols = [_needs_quotes(c) for c in cols]
        sink.write(cols)
        sink.close()
        files[sink.rel] = sink.describe()
    finally:
        if bar is not None:
            bar.stop()
        bg.finish()

    result = {
        "generator": "indices.synth",
        "generator_version": GENERATOR_VERSION,
        "parameters": {
            "persons": persons,
            "extract_date": stamp,
            "seed": seed,
            "lads": None if lads is None else list(ctx.lad_codes),
            "fmt": fmt,
            "faults": float(faults),
            "chunk_persons": CHUNK_PERSONS,
        },
        "lads_covered": len(ctx.lad_codes),
        "files": files,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "_synth.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result
