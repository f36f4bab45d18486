"""An area release: the three area datasets (LSOA, authority, England) of one run disclosure
controlled together by the deployment's method, audited as an attacker would read all of them
and the previous release (`indices.areas.disclosure.audit`), with secondary suppression where
a suppressed count could be worked out, and rates computed from the published counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from indices.areas.counts import COUNTS, LEVELS, PARTITIONS, RATES
from indices.areas.disclosure import (
    CELL_KEY,
    DISCLOSURE_MACROS,
    METHOD_ENV,
    ROUND_TO,
    ROUNDING,
    SUPPRESS_BELOW,
    audit,
    cell_key,
    parameters,
)
from indices.core import storage
from indices.core.duck import connect

KEYS = {"lsoa": ("lsoa11_code", "lad19_code"), "lad": ("lad19_code",), "england": ("country_code",)}


UNLOCATED_ROW = "unlocated"


# Across releases the attacker is assumed to know that each LSOA's persons changed by at most
# this many (one person can move each of its counts by one), so an authority's by this many per
# LSOA; England is not assumed (persons of unknown LSOA come and go).
CHANGE_PER_LSOA = 1


NARROWEST_REPORTED = 20


def area_relations(levels: np.ndarray, areas: np.ndarray, lads: np.ndarray) -> audit.Relations:
    """What every reader knows of the counts of a release whose rows (one per area, the last
    the unlocated persons) have these levels, area codes and LAD codes: categories sum to their
    population and long-term support is at most the population 65+, in every row; an
    authority's counts are the sums of its LSOAs'; England's the sums of its authorities' and
    the unlocated persons'."""
    n = len(COUNTS)
    column = {c.name: i for i, c in enumerate(COUNTS)}
    rows = np.arange(len(levels))
    relations = audit.Relations()
    for total, parts in PARTITIONS.items():
        members = rows[:, None] * n + np.array([column[p] for p in parts])
        relations.add_sums(
            rows * n + column[total], members.ravel(), np.full(len(rows), len(parts))
        )
    relations.add_orders(rows * n + column["lts_65plus"], rows * n + column["pop_65plus"])
    lad_row = {code: r for r, code in enumerate(areas) if levels[r] == "lad"}
    lsoas = np.array(
        [r for r in rows if levels[r] == "lsoa" and lads[r] in lad_row], dtype=np.int64
    )
    owners = np.array([lad_row[lads[r]] for r in lsoas], dtype=np.int64)
    order = np.lexsort((lsoas, owners))
    lsoas, owners = lsoas[order], owners[order]
    groups, sizes = np.unique(owners, return_counts=True)
    england = rows[levels == "england"]
    tops = rows[(levels == "lad") | (levels == UNLOCATED_ROW)]
    for i in range(n):
        if len(groups):
            relations.add_sums(groups * n + i, lsoas * n + i, sizes)
        if len(england) and len(tops):
            relations.add_sums(england * n + i, tops * n + i, np.array([len(tops)]))
    return relations


@dataclass
class PublishedCells:
    """The published counts of a release, cell by cell, as an attacker reads them."""

    levels: np.ndarray
    areas: np.ndarray
    lads: np.ndarray
    values: np.ndarray  # int64, 0 where null
    null: np.ndarray
    suppressed: np.ndarray
    secondary: np.ndarray
    method: str | np.ndarray  # the method, or each cell's (earlier releases may mix)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Each cell's interval before any relation is used (`indices.areas.disclosure.audit`)."""
        values = self.values
        half = ROUND_TO // 2
        lo = np.where(values > 0, values - half, 0)
        hi = np.where(values > 0, values + half, 0)
        lo = np.where(self.suppressed, 1, lo)
        hi = np.where(self.suppressed, SUPPRESS_BELOW - 1, hi)
        lo = np.where(self.secondary, SUPPRESS_BELOW, lo)
        perturbed = np.broadcast_to(np.asarray(self.method) == CELL_KEY, values.shape)
        if perturbed.any():
            key_lo, key_hi = cell_key.ptable().preimage(values)
            lo, hi = np.where(perturbed, key_lo, lo), np.where(perturbed, key_hi, hi)
        unknown = (self.null & ~self.suppressed) | (self.levels == UNLOCATED_ROW).repeat(
            len(COUNTS)
        )
        lo = np.where(unknown, 0, lo)
        hi = np.where(unknown | self.secondary, audit.UNBOUNDED, hi)
        return lo.astype(np.int64), hi.astype(np.int64)

    def relations(self) -> audit.Relations:
        return area_relations(self.levels, self.areas, self.lads)

    def authorities(self) -> np.ndarray:
        """Each cell's group for local propagation: its local authority (England and the
        unlocated persons: one group of their own)."""
        codes = np.where(self.levels == "lsoa", self.lads, self.areas)
        codes = np.where(np.isin(self.levels, ["lsoa", "lad"]), codes, "")
        _, groups = np.unique(codes.astype(str), return_inverse=True)
        return groups.repeat(len(COUNTS))

    def cell_names(self, cells: np.ndarray) -> list[tuple[str, str, str]]:
        """(level, area code, count) of cells."""
        n = len(COUNTS)
        return [(self.levels[c // n], self.areas[c // n], COUNTS[c % n].name) for c in cells]


@dataclass
class AreaRelease:
    """The three area datasets of a release, disclosure controlled together, and the audit."""

    method: str
    table: pa.Table  # every level: level, area_code, lad19_code, counts, flags, withheld_reason
    cells: PublishedCells
    report: dict  # for every manifest: counts only
    details: dict  # private: which cells, for the warehouse
    problems: list[str]

    def manifest_record(self, level: str) -> dict:
        """The `disclosure` entry of the manifest of one level's dataset."""
        record = {"method": self.method, "parameters": parameters(self.method)}
        if self.method == ROUNDING:
            chosen = np.flatnonzero(self.cells.secondary)
            record["secondary_suppressed"] = [
                {"area": area, "count": count}
                for lvl, area, count in self.cells.cell_names(chosen)
                if lvl == level
            ]
        record["audit"] = self.report
        return record

    def level_table(self, level: str) -> pa.Table:
        """One level's published counts and flags, under that dataset's key columns."""
        rows = self.table.filter(pc.equal(self.table["level"], level))
        keys = {"lsoa": ["area_code", "lad19_code"], "lad": ["area_code"], "england": ["area_code"]}
        columns = [rows[k] for k in keys[level]] + [rows[c] for c in _published_columns()]
        return pa.table(columns, names=[*KEYS[level], *_published_columns()])


def _published_columns() -> list[str]:
    return [
        *(c.name for c in COUNTS),
        *(f"{c.name}_suppressed" for c in COUNTS),
        "withheld_reason",
    ]


def area_release(
    area_counts: storage.Location,
    method: str,
    publish_dir: storage.Location | None = None,
    datasets: dict[str, str] | None = None,
) -> AreaRelease:
    """Disclosure control of every level of the private counts together, by `method`, with its
    audit: under rounding, secondary suppression until no suppressed count can be pinned from
    the tables together; then what the previous releases of `datasets` (level: dataset name in
    `publish_dir`) add, assuming `CHANGE_PER_LSOA`."""
    con = connect()
    try:
        con.execute(DISCLOSURE_MACROS)
        con.read_parquet(str(area_counts)).create_view("exact_counts")
        source = "exact_counts"
        if method == CELL_KEY:
            present = {row[0] for row in con.execute(f"DESCRIBE {source}").fetchall()}
            if f"{COUNTS[0].name}_cell_key" not in present:
                raise ValueError(
                    f"{area_counts} has no cell keys (made by an older version): rebuild the "
                    "area counts before publishing with the cell-key method"
                )
        keys = method == CELL_KEY
        counts = ", ".join(
            f"{c.name}, sdc_count({c.name}) AS {c.name}__rounded, "
            f"sdc_suppressed({c.name}) AS {c.name}__suppressed"
            + (f", {c.name}_cell_key" if keys else "")
            for c in COUNTS
        )
        private = con.sql(
            f"SELECT level, area_code, lad19_code, withheld_reason, {counts} "
            f"FROM {source} ORDER BY level, area_code"
        ).to_arrow_table()
    finally:
        con.close()
    levels = np.array([*private["level"].to_pylist(), UNLOCATED_ROW], dtype=object)
    areas = np.array([*private["area_code"].to_pylist(), None], dtype=object)
    lads = np.array([*private["lad19_code"].to_pylist(), None], dtype=object)

    def matrix(suffix: str, fill: int) -> np.ndarray:
        columns = [
            private[c.name + suffix].cast(pa.int64()).fill_null(fill).to_numpy() for c in COUNTS
        ]
        return np.vstack([np.stack(columns, axis=1), np.full((1, len(COUNTS)), fill)]).ravel()

    exact = matrix("", 0)
    null = matrix("", -1) < 0
    unlocated = (levels == UNLOCATED_ROW).repeat(len(COUNTS))
    if method == ROUNDING:
        values = matrix("__rounded", -1)
        suppressed = matrix("__suppressed", 0).astype(bool)
    elif method == CELL_KEY:
        values = np.where(null, -1, cell_key.ptable().perturb(exact, matrix("_cell_key", 0)))
        suppressed = np.zeros(len(exact), bool)
    else:
        raise ValueError(f"unknown disclosure method {method!r}")
    published = values >= 0
    cells = PublishedCells(
        levels,
        areas,
        lads,
        np.where(published, values, 0),
        ~published | unlocated,
        suppressed,
        np.zeros(len(exact), bool),
        method,
    )
    relations = cells.relations()
    problems: list[str] = []
    blanked = np.zeros(len(exact), bool)
    while True:
        lo, hi = cells.bounds()
        try:
            if method == ROUNDING:
                cells.secondary, lo, hi = audit.suppress_until_safe(
                    lo,
                    hi,
                    relations,
                    suppressed,
                    published & (values > 0) & ~unlocated & ~blanked,
                    exact,
                    (SUPPRESS_BELOW, audit.UNBOUNDED),
                    cells.authorities(),
                )
            else:
                lo, hi = audit.tighten(lo, hi, relations)
            break
        except audit.Unprotectable as error:
            # Nothing published beside them can be suppressed: the counts of these
            # authorities are withheld whole (below), or if that frees nothing, refused.
            more = _authority_cells(cells, error.cells) & ~blanked
            if not more.any():
                problems.append(
                    f"disclosure audit: {len(error.cells)} suppressed count(s) can be worked "
                    "out exactly from the tables together and no count beside them can be "
                    f"suppressed to prevent it, e.g. {_named(cells, error.cells[:3])}; the "
                    f"cell-key method ({METHOD_ENV}=cell_key) protects such areas"
                )
                cells.secondary, lo, hi = error.secondary, error.lo, error.hi
                break
            blanked |= more
            suppressed = suppressed & ~blanked
            cells.suppressed, cells.null = suppressed, cells.null | blanked
        except audit.Infeasible as error:
            raise ValueError(
                "disclosure audit: the counts contradict the relations between them (a bug in "
                f"the area counts), e.g. {_named(cells, error.cells[:3])}"
            ) from None
    if method == ROUNDING:
        cells.suppressed = suppressed | cells.secondary
        cells.null = cells.null | cells.secondary
    report, details = _release_report(cells, lo, hi)
    report["withheld_in_authority"] = int(blanked.sum())
    details["withheld_in_authority"] = _interval_rows(cells, np.flatnonzero(blanked), lo, hi)
    table = _protected_table(private, cells, blanked)
    release = AreaRelease(method, table, cells, report, details, problems)
    if publish_dir is not None and datasets:
        earlier = previous_releases(publish_dir, datasets, release)
        across, across_details = _across_releases(cells, earlier)
        release.report["previous_release"] = across
        release.details["previous_release"] = across_details
    return release


def _named(cells: PublishedCells, chosen: np.ndarray) -> str:
    return ", ".join(f"{lvl} {area} {count}" for lvl, area, count in cells.cell_names(chosen))


def _authority_cells(cells: PublishedCells, pinned: np.ndarray) -> np.ndarray:
    """Every cell of the same count in the authorities of some cells, the authority's own and
    its LSOAs' (or, outside any authority, the cells themselves).

    When suppressed counts are pinned and nothing published beside them can be suppressed
    (an authority's count of at most 7 and as many of its LSOAs suppressed: each is 1),
    withholding one more cell would not do: whoever knows this rule knows a withheld cell was
    suppressed, 1 to 7. Withheld together, an authority's count and all its LSOAs' (the zeros
    too) say nothing of any one LSOA."""
    n = len(COUNTS)
    rows, counts = pinned // n, pinned % n
    of_lad = np.where(cells.levels == "lsoa", cells.lads, cells.areas)
    chosen = np.zeros(len(cells.values), bool)
    for row, count in zip(rows, counts, strict=True):
        if cells.levels[row] in ("lsoa", "lad"):
            same = np.isin(cells.levels, ["lsoa", "lad"]) & (of_lad == of_lad[row])
            chosen[np.flatnonzero(same) * n + count] = True
        else:
            chosen[row * n + count] = True
    return chosen


def _protected_table(private: pa.Table, cells: PublishedCells, blanked: np.ndarray) -> pa.Table:
    """Every level's published counts and flags (the unlocated row dropped); counts withheld in
    an authority by the audit (`blanked`) say so in `withheld_reason`."""
    n, rows = len(COUNTS), private.num_rows
    values = cells.values.reshape(-1, n)[:rows]
    null = cells.null.reshape(-1, n)[:rows]
    flags = cells.suppressed.reshape(-1, n)[:rows]
    columns = {k: private[k] for k in ("level", "area_code", "lad19_code")}
    for i, c in enumerate(COUNTS):
        columns[c.name] = pa.array(values[:, i], pa.int64(), mask=null[:, i])
    for i, c in enumerate(COUNTS):
        columns[f"{c.name}_suppressed"] = pa.array(flags[:, i], pa.bool_())
    reasons = private["withheld_reason"].to_pylist()
    for row, withheld in enumerate(blanked.reshape(-1, n)[:rows]):
        names = [c.name for c, out in zip(COUNTS, withheld, strict=True) if out]
        if names:
            why = (
                f"{', '.join(names)}: withheld in this authority by disclosure control (cell "
                "by cell, its small counts could be worked out exactly)"
            )
            reasons[row] = f"{reasons[row]}; {why}" if reasons[row] else why
    columns["withheld_reason"] = pa.array(reasons, pa.string())
    return pa.table(columns)


def _interval_rows(cells: PublishedCells, chosen: np.ndarray, lo, hi) -> list[dict]:
    return [
        {"level": lvl, "area": area, "count": count, "low": int(lo[c]), "high": int(hi[c])}
        for (lvl, area, count), c in zip(cells.cell_names(chosen), chosen, strict=True)
    ]


def _release_report(cells: PublishedCells, lo: np.ndarray, hi: np.ndarray) -> tuple[dict, dict]:
    """What the audit found in the release itself: counts for the manifest, cells privately."""
    suppressed = np.flatnonzero(cells.suppressed & ~cells.secondary)
    narrowed = audit.narrowed(lo, hi, suppressed)
    widths = hi[narrowed] - lo[narrowed] + 1
    order = narrowed[np.lexsort((narrowed, widths))][:NARROWEST_REPORTED]
    shown = cells.values > 0
    if cells.method == CELL_KEY:
        shown = ~cells.null
    exact = np.flatnonzero(shown & ~cells.suppressed & (lo == hi))
    small = exact[(lo[exact] >= 1) & (lo[exact] < SUPPRESS_BELOW)]
    report = {
        "attacker": "all three area tables together: categories sum to their population, "
        "LSOAs to their authority, authorities and unknown-LSOA persons to England, long-term "
        "support at most the population 65+; interval propagation to a fixpoint",
        "suppressed": int(len(suppressed)),
        "secondary_suppressed": int(cells.secondary.sum()),
        "suppressed_pinned": int(((lo == hi) & cells.suppressed).sum()),
        "suppressed_narrowed": int(len(narrowed)),
        "narrowed_by_width": {str(w): int((widths == w).sum()) for w in sorted(set(widths))},
        "published_pinned": int(len(exact)),
        "small_counts_pinned": int(len(small)),
    }
    details = {
        "narrowest": _interval_rows(cells, order, lo, hi),
        "secondary_suppressed": _interval_rows(cells, np.flatnonzero(cells.secondary), lo, hi),
        "small_counts_pinned": _interval_rows(cells, small, lo, hi),
    }
    return report, details


def previous_releases(
    publish_dir: storage.Location, datasets: dict[str, str], release: AreaRelease
) -> dict[str, tuple[str, pa.Table, dict]]:
    """Per level, the release an attacker would set against this one: the latest whose counts
    differ from this release's (an identical one tells nothing new): version, table, manifest."""
    from indices.core.published import DATA_FILE, list_versions, read_manifest

    found = {}
    for level, dataset in datasets.items():
        current = _comparable(release.level_table(level), level)
        for version in reversed(list_versions(publish_dir, dataset)):
            table = storage.read_table(storage.join(publish_dir, dataset, version, DATA_FILE))
            if current is None or not current.equals(_comparable(table, level)):
                found[level] = (version, table, read_manifest(publish_dir, dataset, version))
                break
    return found


def _comparable(table: pa.Table, level: str) -> pa.Table | None:
    """A table's keys, counts, flags and reasons in one canonical form, or None if it lacks any."""
    columns = [*KEYS[level], *_published_columns()]
    if not set(columns) <= set(table.column_names):
        return None
    types = {c.name: pa.int64() for c in COUNTS} | {
        f"{c.name}_suppressed": pa.bool_() for c in COUNTS
    }
    schema = pa.schema([(name, types.get(name, pa.string())) for name in columns])
    return table.select(columns).cast(schema).sort_by([(k, "ascending") for k in KEYS[level]])


def _cells_of(earlier: dict[str, tuple[str, pa.Table, dict]]) -> PublishedCells:
    """An earlier release's published cells, read from its tables and manifests."""
    n = len(COUNTS)
    levels, areas, lads, values, null, suppressed, secondary, methods = ([] for _ in range(8))
    for level in LEVELS:
        if level not in earlier:
            continue
        _, table, manifest = earlier[level]
        record = manifest.get("disclosure") or {"method": ROUNDING}
        chosen = {(s["area"], s["count"]) for s in record.get("secondary_suppressed", [])}
        codes = table[KEYS[level][0]].to_pylist()
        levels += [level] * len(codes)
        areas += codes
        lads += table["lad19_code"].to_pylist() if level != "england" else [None] * len(codes)
        counts = np.stack(
            [table[c.name].fill_null(-1).to_numpy().astype(np.int64) for c in COUNTS], axis=1
        )
        values.append(np.maximum(counts, 0).ravel())
        null.append((counts < 0).ravel())
        flags = [table[f"{c.name}_suppressed"].fill_null(False).to_numpy() for c in COUNTS]
        suppressed.append(np.stack(flags, axis=1).astype(bool).ravel())
        secondary.append(
            np.array([(code, c.name) in chosen for code in codes for c in COUNTS], dtype=bool)
        )
        methods += [record["method"]] * (len(codes) * n)
    return PublishedCells(
        np.array([*levels, UNLOCATED_ROW], dtype=object),
        np.array([*areas, None], dtype=object),
        np.array([*lads, None], dtype=object),
        np.concatenate([*values, np.zeros(n, np.int64)]),
        np.concatenate([*null, np.ones(n, bool)]),
        np.concatenate([*suppressed, np.zeros(n, bool)]),
        np.concatenate([*secondary, np.zeros(n, bool)]),
        np.array([*methods, *[ROUNDING] * n], dtype=object),
    )


def _across_releases(
    cells: PublishedCells, earlier: dict[str, tuple[str, pa.Table, dict]]
) -> tuple[dict, dict]:
    """What setting this release against the earlier one adds: both releases' cells and
    relations, each cell of an LSOA known to have changed by at most `CHANGE_PER_LSOA` (an
    authority's by that per LSOA). Where that assumption cannot hold (no values fit), the
    authority's cells are not paired."""
    report: dict = {
        "releases": {level: version for level, (version, _, _) in earlier.items()},
        "change_per_lsoa": CHANGE_PER_LSOA,
    }
    if not earlier:
        return report, {}
    before = _cells_of(earlier)
    offset = len(cells.values)
    n = len(COUNTS)
    lo_now, hi_now = cells.bounds()
    lo_before, hi_before = before.bounds()
    alone = audit.tighten(lo_before, hi_before, before.relations())
    lo = np.concatenate([lo_now, lo_before])
    hi = np.concatenate([hi_now, hi_before])
    relations = cells.relations().merged(before.relations().shifted(offset))
    row_before = {
        (lvl, a): r for r, (lvl, a) in enumerate(zip(before.levels, before.areas, strict=True))
    }
    lsoas_in = {}
    for lvl, lad in zip(cells.levels, cells.lads, strict=True):
        if lvl == "lsoa":
            lsoas_in[lad] = lsoas_in.get(lad, 0) + 1
    pairs = [
        (
            r,
            row_before[(lvl, a)],
            CHANGE_PER_LSOA * (1 if lvl == "lsoa" else lsoas_in.get(a, 0)),
            lad,
        )
        for r, (lvl, a, lad) in enumerate(zip(cells.levels, cells.areas, cells.lads, strict=True))
        if lvl in ("lsoa", "lad") and (lvl, a) in row_before
    ]
    unpaired: set[str] = set()
    while True:
        kept = [p for p in pairs if p[3] not in unpaired]
        paired = audit.Relations()
        if kept:
            now = np.array([p[0] for p in kept])
            then = np.array([p[1] for p in kept])
            change = np.array([p[2] for p in kept])
            paired.add_changes(
                (now[:, None] * n + np.arange(n)).ravel(),
                (then[:, None] * n + np.arange(n)).ravel() + offset,
                change.repeat(n),
            )
        try:
            lo_both, hi_both = audit.tighten(lo, hi, relations.merged(paired))
            break
        except audit.Infeasible as error:
            # The assumption fails for some authority (more persons changed): stop pairing it.
            lads = (
                {
                    cells.lads[c // n] if c < offset else before.lads[(c - offset) // n]
                    for c in error.cells
                }
                - unpaired
                - {None}
            )
            unpaired |= lads or {p[3] for p in kept}
    then_lo, then_hi = lo_both[offset:], hi_both[offset:]
    earlier_suppressed = np.flatnonzero(before.suppressed)
    newly = earlier_suppressed[
        (then_lo[earlier_suppressed] == then_hi[earlier_suppressed])
        & (alone[0][earlier_suppressed] < alone[1][earlier_suppressed])
    ]
    now_suppressed = np.flatnonzero(cells.suppressed)
    pinned_now = now_suppressed[lo_both[now_suppressed] == hi_both[now_suppressed]]
    narrowed = audit.narrowed(then_lo, then_hi, earlier_suppressed)
    report |= {
        "earlier_suppressed": int(len(earlier_suppressed)),
        "earlier_suppressed_pinned": int(len(newly)),
        "earlier_suppressed_narrowed": int(len(narrowed)),
        "suppressed_pinned": int(len(pinned_now)),
        "authorities_not_paired": sorted(unpaired),
    }
    details = {
        "earlier_suppressed_pinned": _interval_rows(before, newly, then_lo, then_hi),
        "suppressed_pinned": _interval_rows(cells, pinned_now, lo_both, hi_both),
    }
    return report, details


def published_area_sql(protected: str, level: str) -> str:
    """A published area dataset from `protected` (a relation holding every level's disclosure
    controlled counts and flags, see `AreaRelease.table`): keys, counts, flags and rates; its
    parameters are `$level` and `$reference_date`."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    keys = {
        "lsoa": "area_code AS lsoa11_code, lad19_code",
        "lad": "area_code AS lad19_code",
        "england": "area_code AS country_code",
    }[level]
    counts = ", ".join(c.name for c in COUNTS)
    flags = ", ".join(f"{c.name}_suppressed" for c in COUNTS)
    rates = ", ".join(
        f"CASE WHEN {r.denominator} > 0 THEN ({' + '.join(r.numerators)}) / {r.denominator} END "
        f"AS {r.name}"
        for r in RATES
    )
    return f"""
    WITH published AS (
        SELECT {keys}, CAST($reference_date AS DATE) AS reference_date, {counts}, {flags},
               withheld_reason
        FROM {protected} WHERE level = $level
    )
    SELECT *, {rates} FROM published
    """


def published_area_table(
    release: AreaRelease, level: str, reference_date: date, con: duckdb.DuckDBPyConnection
) -> pa.Table:
    """The published dataset of one level as an Arrow table."""
    con.register("protected_counts", release.table)
    try:
        return con.sql(
            published_area_sql("protected_counts", level),
            params={"level": level, "reference_date": reference_date},
        ).to_arrow_table()
    finally:
        con.unregister("protected_counts")


def published_problems(table: pa.Table, method: str) -> list[str]:
    """What a published area table may not hold under its method, beyond single values (see
    `indices.releases.publish.audit_table`): a null count is suppressed or withheld, never unexplained;
    under the cell-key method nothing is suppressed."""
    problems = []
    withheld = pc.is_valid(table["withheld_reason"])
    for c in COUNTS:
        flag = table[f"{c.name}_suppressed"]
        unexplained = pc.and_(pc.is_null(table[c.name]), pc.invert(pc.or_(flag, withheld)))
        if pc.any(unexplained).as_py():
            problems.append(f"{c.name}: null but neither suppressed nor withheld")
        if pc.any(pc.and_(flag, pc.is_valid(table[c.name]))).as_py():
            problems.append(f"{c.name}: flagged suppressed but published")
        if method == CELL_KEY and pc.any(flag).as_py():
            problems.append(f"{c.name}: suppressed, but the cell-key method suppresses nothing")
    return problems
