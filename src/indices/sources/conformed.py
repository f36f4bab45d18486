"""The conformed tables of a run: conform the extracts it reads, check a table was made from
them before it is used, and read their sidecars (raw files, ledgers)."""

from __future__ import annotations

import pyarrow as pa

from indices.core import storage, warehouse
from indices.core.reference import REFERENCE_FILES, input_record, lsoa_lookup, reference_path
from indices.core.settings import Settings
from indices.sources import kinds
from indices.sources.conform import (
    SourceResult,
    conform_parts,
    count_data_rows,
    distinct_raw_values,
    read_sidecar,
)
from indices.sources.extracts import Extract
from indices.sources.inputs import InputsChanged, RunInputs, in_force, inputs_of
from indices.sources.pseudonym import load_key
from indices.sources.registry import AUTHORITY_SOURCES, REGISTER, SOURCES

# -- the run's inputs ------------------------------------------------------------------------------
# Within a run every step reads what the run decided when it started (`settings.inputs`, see
# `indices.sources.inputs`); the library used on its own decides afresh at each call.


# -- partitions by local authority ---------------------------------------------------------------
# Person-level work runs one lower-tier local authority at a time: the persons resident in it
# (and, apart, those with no known LSOA), and the persons its own social care extract supports.
# The national counts read every part, and only parts made from the current extracts at the
# reference date (`current_parts`), so a late or missing part stops them instead of skewing them.


# -- composite indices ---------------------------------------------------------------------------


class RegisterUnusable(ValueError):
    """Nothing can be counted without the GP register; the message says why in one line."""


def conform(settings: Settings, source: str) -> SourceResult:
    """Conform the extracts in force of one national source into the private warehouse. The
    register must be usable: without it there is no population, so nothing that depends on it
    may be published (`RegisterUnusable`)."""
    inputs = inputs_of(settings)
    result = _conform_parts(settings, inputs, source, {None: inputs.of(source)})[0]
    if SOURCES[source].is_register:
        rejected = [entry.rejected for entry in result.ledger if entry.rejected]
        if rejected or not result.rows_conformed:
            why = "; ".join(rejected) or "no registration could be used (every row quarantined)"
            raise RegisterUnusable(
                f"the GP register cannot be used ({why}): nothing that depends on it is published"
            )
    return result


def conform_by_authority(
    settings: Settings, source: str, authorities: list[str]
) -> list[SourceResult]:
    """Conform the extracts in force of a source sent by each local authority, one part per
    authority (an authority that sent none gets an empty part), in one go."""
    inputs = inputs_of(settings)
    extracts = inputs.of(source)
    parts = {a: [e for e in extracts if e.lad19_code == a] for a in authorities}
    return _conform_parts(settings, inputs, source, parts)


def _conform_parts(
    settings: Settings, inputs: RunInputs, source: str, parts: dict[str | None, list[Extract]]
) -> list[SourceResult]:
    """Conform, checking that no extract changed while it was read, and stamp each part's
    sidecar with the digest of what it was made from (`verify_conformed` compares it)."""
    extracts = [e for files in parts.values() for e in files]
    inputs.check_unchanged(extracts)
    made_from = {part: inputs.source_digest(source, files) for part, files in parts.items()}
    key = load_key(settings.warehouse_dir)
    results = conform_parts(SOURCES[source], parts, settings.warehouse_dir, key, made_from)
    inputs.check_unchanged(extracts)
    return results


def verify_conformed(settings: Settings, source: str, part: str | None = None) -> dict:
    """The sidecar of a conformed table (or part), checked to be made from this run's extracts:
    another run on the same warehouse with other extracts, or a table not rebuilt since new
    extracts arrived, is refused with one line (`InputsChanged`) instead of being mixed in."""
    where = f"conformed/{source}" + (f" of {part}" if part else "")
    if not storage.exists(warehouse.sidecar(settings.warehouse_dir, source, part)):
        raise InputsChanged(f"{where} is not in the warehouse: materialise it first")
    sidecar = read_sidecar(settings.warehouse_dir, source, part)
    inputs = inputs_of(settings)
    files = inputs.of(source)
    if part is not None:
        files = [e for e in files if e.lad19_code == part]
    if sidecar.get("made_from") != inputs.source_digest(source, files):
        raise InputsChanged(
            f"{where} in the warehouse was made from other extracts than this run's (another run "
            f"on the same warehouse, or new extracts since): materialise {where} again"
        )
    return sidecar


def sidecars(settings: Settings, source: str) -> list[dict]:
    """The sidecars of a conformed source: one, or one per authority in force for a source sent
    by each local authority (a part not conformed yet is left out; `current_parts` guards)."""
    if source not in AUTHORITY_SOURCES:
        return [verify_conformed(settings, source)]
    return [
        verify_conformed(settings, source, authority)
        for authority in social_care_authorities(settings)
        if storage.exists(warehouse.sidecar(settings.warehouse_dir, source, authority))
    ]


def lineage_inputs(
    settings: Settings, sources: tuple[str, ...], reference: bool = True
) -> list[dict]:
    """Every raw extract (from the conformed sidecars) and reference file that fed a dataset."""

    inputs = [
        i for source in sources for sidecar in sidecars(settings, source) for i in sidecar["inputs"]
    ]
    if reference:
        inputs += [input_record(reference_path(r), f"reference/{r}") for r in reference_files()]
    return inputs


def reference_files() -> list[str]:
    """Every reference file a run's figures depend on: the measures' (`REFERENCE_FILES`) and
    every vocabulary a source declares."""
    vocabularies = [
        column.vocabulary.split(":")[0]
        for source in SOURCES.values()
        for column in source.columns
        if column.vocabulary
    ]
    return list(dict.fromkeys([*REFERENCE_FILES, *vocabularies]))


def ledger_table(settings: Settings) -> pa.Table:
    """The exact ingest ledger of this run's conformed tables, long format: private (small
    counts of a file's rows may concern a handful of persons); see `published_ledger_table`."""
    records = [
        row
        for source in SOURCES
        for sidecar in sidecars(settings, source)
        for row in sidecar["ledger"]
    ]
    return pa.Table.from_pylist(
        records,
        schema=pa.schema(
            [
                ("source", pa.string()),
                ("file", pa.string()),
                ("outcome", pa.string()),
                ("reason", pa.string()),
                ("rows", pa.int64()),
            ]
        ),
    )


def ledger_problems(settings: Settings) -> list[str]:
    """Files whose rows conformed plus quarantined differ from their data rows counted afresh,
    or that this run did not decide to read."""
    problems = []
    for source in SOURCES:
        extracts = {e.path.name: e for e in in_force(settings, source)}
        accounted: dict[str, int] = {}
        for row in (r for sidecar in sidecars(settings, source) for r in sidecar["ledger"]):
            if row["outcome"] in ("conformed", "quarantined"):
                accounted[row["file"]] = accounted.get(row["file"], 0) + row["rows"]
        for name, rows in accounted.items():
            if name not in extracts:
                problems.append(f"{name}: conformed, but not an extract this run reads")
                continue
            read = count_data_rows(extracts[name])
            if read != rows:
                problems.append(f"{name}: {read} data rows, {rows} accounted for")
    return problems


def linkage_rate(results: list[SourceResult]) -> float | None:
    """Share of a person-level source's rows (over all the results given) that could be linked
    to a person in the GP register: conformed rows over those plus rows set aside for a missing,
    invalid or unknown NHS number."""
    unlinked = sum(
        e.quarantined[r]
        for result in results
        for e in result.ledger
        for r in ("no_nhs_number", "invalid_nhs_number", "unknown_person")
    )
    conformed = sum(result.rows_conformed for result in results)
    total = conformed + unlinked
    return conformed / total if total else None


def authorities_in_raw(settings: Settings) -> list[str]:
    """The local authorities to partition by, read from the raw folder without conforming: those
    of the LSOAs in the newest GP register extract and those sending an extract of their own
    (social care)."""
    lad_of = dict(zip(lsoa_lookup()["lsoa11_code"], lsoa_lookup()["lad19_code"], strict=True))
    found = {e.lad19_code for source in AUTHORITY_SOURCES for e in in_force(settings, source)}
    register = in_force(settings, REGISTER)
    if register:
        lsoa = next(c for c in SOURCES[REGISTER].columns if c.kind is kinds.LSOA)
        lsoas = distinct_raw_values(register[-1], lsoa.name.lower())
        found |= {lad_of[code] for code in lsoas if code in lad_of}
    return sorted(found)


def social_care_authorities(settings: Settings) -> list[str]:
    """The local authorities with a social care extract in force."""
    return sorted({e.lad19_code for e in in_force(settings, "asc_cld")})
