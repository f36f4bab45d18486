"""What an attacker can infer from every table of a release together, and from its predecessor.

The attacker model. Each published count is an interval of what its true value could be:
rounded r is r-2..r+2 (0 is exactly 0); suppressed is 1..7; a count suppressed to protect
another (secondary suppression) is taken as known to be one, so 8 or more; withheld is unknown
(0 or more); under the cell-key method, a published value is every true value the ptable can
take to it. The attacker also knows linear relations between cells: sums (a total equals the
sum of its parts, e.g. categories and their population, LSOAs and their authority) and orders
(one cell is at most another). Across two releases they may assume each cell changed by at
most k.

The audit tightens every cell's interval by interval propagation to a fixpoint, in whole
numbers: from a sum, the total lies within the sums of its parts' bounds and each part within
the total's bounds less the others'. Propagation is sound (the truth always stays inside) and
runs over every cell at once with numpy, a few rounds for a national release; an attacker
solving the integer program exactly could in rare cases narrow further.

A suppressed cell whose interval shrinks to one value is disclosed. `suppress_until_safe`
removes such pins deterministically by suppressing further (secondary suppression), the
smallest published count that frees each pinned one, until nothing suppressed is pinned; some
pins cannot be freed (an authority's suppressed count equal to the number of its LSOAs with a
suppressed count: each is 1), and then the release is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

UNBOUNDED = 2**40  # an upper bound no count reaches: "unknown"
NARROW_LIMIT = 7  # a suppressed count is 1..7: an interval of fewer than 7 values is narrowed


class Unprotectable(ValueError):
    """Suppressed cells pinned by the relations that no secondary suppression can free."""

    def __init__(self, cells: np.ndarray, secondary: np.ndarray, lo: np.ndarray, hi: np.ndarray):
        super().__init__(f"{len(cells)} suppressed cell(s) pinned that nothing can free")
        self.cells, self.secondary, self.lo, self.hi = cells, secondary, lo, hi


@dataclass
class Relations:
    """Linear relations between cells (indices into the bound arrays): sums `total = Σ parts`
    (the parts of sum s are `parts[starts[s]:starts[s + 1]]`), orders `smaller <= larger`, and
    changes `|first - second| <= change` (the same cell in two releases)."""

    totals: list[np.ndarray] = field(default_factory=list)
    parts: list[np.ndarray] = field(default_factory=list)
    sizes: list[np.ndarray] = field(default_factory=list)
    smaller: list[np.ndarray] = field(default_factory=list)
    larger: list[np.ndarray] = field(default_factory=list)
    first: list[np.ndarray] = field(default_factory=list)
    second: list[np.ndarray] = field(default_factory=list)
    change: list[np.ndarray] = field(default_factory=list)

    def add_sums(self, totals: np.ndarray, parts: np.ndarray, sizes: np.ndarray) -> None:
        """Sums with these totals; `parts` holds each sum's parts in turn, `sizes` how many."""
        if len(totals) != len(sizes) or int(np.sum(sizes)) != len(parts) or (sizes < 1).any():
            raise ValueError("every sum needs a total and at least one part")
        self.totals.append(np.asarray(totals, np.int64))
        self.parts.append(np.asarray(parts, np.int64))
        self.sizes.append(np.asarray(sizes, np.int64))

    def add_orders(self, smaller: np.ndarray, larger: np.ndarray) -> None:
        self.smaller.append(np.asarray(smaller, np.int64))
        self.larger.append(np.asarray(larger, np.int64))

    def add_changes(self, first: np.ndarray, second: np.ndarray, change: np.ndarray) -> None:
        self.first.append(np.asarray(first, np.int64))
        self.second.append(np.asarray(second, np.int64))
        self.change.append(np.broadcast_to(np.asarray(change, np.int64), len(first)).copy())

    def shifted(self, offset: int) -> Relations:
        """The same relations over cells numbered `offset` higher (another release's)."""
        return Relations(
            [t + offset for t in self.totals],
            [p + offset for p in self.parts],
            list(self.sizes),
            [s + offset for s in self.smaller],
            [g + offset for g in self.larger],
            [f + offset for f in self.first],
            [s + offset for s in self.second],
            list(self.change),
        )

    def merged(self, other: Relations) -> Relations:
        return Relations(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    def compiled(self) -> _Compiled:
        def cat(arrays: list[np.ndarray]) -> np.ndarray:
            return np.concatenate(arrays) if arrays else np.zeros(0, np.int64)

        sizes = cat(self.sizes)
        return _Compiled(
            totals=cat(self.totals),
            parts=cat(self.parts),
            starts=np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
            owner=np.repeat(np.arange(len(sizes)), sizes),
            smaller=cat(self.smaller),
            larger=cat(self.larger),
            first=cat(self.first),
            second=cat(self.second),
            change=cat(self.change),
        )


@dataclass
class _Compiled:
    totals: np.ndarray
    parts: np.ndarray
    starts: np.ndarray
    owner: np.ndarray
    smaller: np.ndarray
    larger: np.ndarray
    first: np.ndarray
    second: np.ndarray
    change: np.ndarray

    def incidence(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (cell, relation) membership, relations numbered sums, then orders, then
        changes: the cells and the relations, in order of cell."""
        sums, orders = len(self.totals), len(self.smaller)
        cells = [self.totals, self.parts, self.smaller, self.larger, self.first, self.second]
        relations = [
            np.arange(sums),
            self.owner,
            sums + np.arange(orders),
            sums + np.arange(orders),
            sums + orders + np.arange(len(self.first)),
            sums + orders + np.arange(len(self.first)),
        ]
        cell, relation = np.concatenate(cells), np.concatenate(relations)
        order = np.argsort(cell, kind="stable")
        return cell[order], relation[order]

    def select(self, relations: np.ndarray) -> tuple[_Compiled, np.ndarray]:
        """Some relations (numbered as in `incidence`) over the cells they involve, renumbered
        0.. in the order of the returned cell numbers."""
        sums, orders = len(self.totals), len(self.smaller)
        chosen_sums = relations[relations < sums]
        chosen_orders = relations[(relations >= sums) & (relations < sums + orders)] - sums
        chosen_changes = relations[relations >= sums + orders] - sums - orders
        sizes = np.diff(np.append(self.starts, len(self.parts)))[chosen_sums]
        offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        arrays = {
            "totals": self.totals[chosen_sums],
            "parts": self.parts[np.repeat(self.starts[chosen_sums], sizes) + offsets],
            "smaller": self.smaller[chosen_orders],
            "larger": self.larger[chosen_orders],
            "first": self.first[chosen_changes],
            "second": self.second[chosen_changes],
        }
        cells = np.unique(np.concatenate(list(arrays.values())))
        return (
            _Compiled(
                starts=np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64),
                owner=np.repeat(np.arange(len(sizes)), sizes),
                change=self.change[chosen_changes],
                **{k: np.searchsorted(cells, v) for k, v in arrays.items()},
            ),
            cells,
        )


class Infeasible(ValueError):
    """No true values fit the published intervals and the relations (an assumption is wrong)."""

    def __init__(self, cells: np.ndarray):
        super().__init__(f"{len(cells)} cell(s) have no value left")
        self.cells = cells


def tighten(
    lo: np.ndarray, hi: np.ndarray, relations: Relations | _Compiled, max_rounds: int = 10_000
) -> tuple[np.ndarray, np.ndarray]:
    """The intervals narrowed by the relations to a fixpoint (new arrays). Raises `Infeasible`
    naming the cells left with no value."""
    r = relations.compiled() if isinstance(relations, Relations) else relations
    lo = np.asarray(lo, np.int64).copy()
    hi = np.minimum(np.asarray(hi, np.int64), UNBOUNDED)
    has_sums = len(r.totals) > 0
    for _ in range(max_rounds):
        before_lo, before_hi = lo.copy(), hi.copy()
        if has_sums:
            sum_lo = np.add.reduceat(lo[r.parts], r.starts)
            sum_hi = np.add.reduceat(hi[r.parts], r.starts)
            np.maximum.at(lo, r.totals, sum_lo)
            np.minimum.at(hi, r.totals, sum_hi)
            total_lo, total_hi = lo[r.totals][r.owner], hi[r.totals][r.owner]
            np.maximum.at(lo, r.parts, total_lo - (sum_hi[r.owner] - hi[r.parts]))
            np.minimum.at(hi, r.parts, total_hi - (sum_lo[r.owner] - lo[r.parts]))
        np.minimum.at(hi, r.smaller, hi[r.larger])
        np.maximum.at(lo, r.larger, lo[r.smaller])
        for a, b in ((r.first, r.second), (r.second, r.first)):
            np.maximum.at(lo, a, lo[b] - r.change)
            np.minimum.at(hi, a, hi[b] + r.change)
        np.maximum(lo, 0, out=lo)
        np.minimum(hi, UNBOUNDED, out=hi)
        empty = np.flatnonzero(lo > hi)
        if len(empty):
            raise Infeasible(empty)
        if np.array_equal(lo, before_lo) and np.array_equal(hi, before_hi):
            return lo, hi
    raise RuntimeError(f"interval propagation did not settle in {max_rounds} rounds")


def suppress_until_safe(
    lo: np.ndarray,
    hi: np.ndarray,
    relations: Relations,
    suppressed: np.ndarray,
    candidates: np.ndarray,
    exact: np.ndarray,
    secondary_bounds: tuple[int, int],
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Secondary suppression: the cells to suppress besides `suppressed` so that no suppressed
    cell is pinned to one value, and the tightened bounds with them suppressed. `lo` and `hi`
    are the published intervals; `candidates` the cells that may be suppressed (published,
    non-zero); a suppressed one becomes `secondary_bounds`.

    Deterministic and greedy, in rounds. A pinned cell is held by the sources that reach its
    value: its own interval, or relations whose bound for it equals the value. A candidate
    frees it if it loosens every source of one side, which suppressing does only to a cell
    whose own published bound is what binds it (a published 10 whose upper bound 9 comes from
    elsewhere is not freed by suppressing it). Each pinned cell, in order, gets the freeing
    candidate of least `exact` value (ties: lower cell number), unless one chosen this round
    already frees it; when no pinned cell has one sharing a relation with it, the candidates
    that free the cells holding it (one relation further, then two) are sought. Each round
    propagates again over the `groups` it touched (e.g. local authorities; other cells held at
    their bounds); once nothing is pinned a propagation over every cell confirms it, or the
    rounds go on. Raises `Unprotectable` when pinned cells remain that nothing can free."""
    compiled = relations.compiled()
    groups = np.zeros(len(lo), np.int64) if groups is None else np.asarray(groups)
    member, relation = compiled.incidence()
    by_cell = np.searchsorted(member, np.arange(len(lo) + 1))
    pairs = np.unique(np.stack([groups[member], relation]), axis=1)
    by_group = np.searchsorted(pairs[0], np.arange(groups.max() + 2))
    secondary = np.zeros(len(lo), bool)

    def starts() -> tuple[np.ndarray, np.ndarray]:
        start_lo, start_hi = lo.copy(), hi.copy()
        start_lo[secondary], start_hi[secondary] = secondary_bounds
        return start_lo, start_hi

    bounds_lo, bounds_hi = tighten(lo, hi, compiled)
    confirmed = True  # the bounds come from a propagation over every cell
    while True:
        pinned = np.flatnonzero((suppressed | secondary) & (bounds_lo == bounds_hi))
        if not len(pinned):
            if confirmed:
                return secondary, bounds_lo, bounds_hi
            bounds_lo, bounds_hi = tighten(*starts(), compiled)
            confirmed = True
            continue
        start_lo, start_hi = starts()
        finder = _Freeing(
            compiled,
            member,
            relation,
            by_cell,
            start_lo,
            start_hi,
            bounds_lo,
            bounds_hi,
            candidates & ~secondary,
            secondary_bounds[0],
        )
        chosen: list[int] = []
        for depth in range(3):
            for cell in pinned:
                freeing = finder.freeing(cell, depth)
                if freeing and not freeing & set(chosen):
                    chosen.append(min(freeing, key=lambda c: (exact[c], c)))
            if chosen:
                break
        if not chosen:
            if confirmed:
                raise Unprotectable(pinned, secondary, bounds_lo, bounds_hi)
            bounds_lo, bounds_hi = tighten(*starts(), compiled)  # the pins may be stale
            confirmed = True
            continue
        secondary[chosen] = True
        touched = np.unique(groups[np.concatenate([pinned, chosen])])
        if len(touched) == groups.max() + 1:
            bounds_lo, bounds_hi = tighten(*starts(), compiled)
            confirmed = True
            continue
        near = np.unique(np.concatenate([pairs[1][by_group[g] : by_group[g + 1]] for g in touched]))
        local, cells = compiled.select(near)
        start_lo, start_hi = starts()
        inside = np.isin(groups[cells], touched)
        local_lo = np.where(inside, start_lo[cells], bounds_lo[cells])
        local_hi = np.where(inside, start_hi[cells], bounds_hi[cells])
        local_lo, local_hi = tighten(local_lo, local_hi, local)
        bounds_lo[cells[inside]] = local_lo[inside]
        bounds_hi[cells[inside]] = local_hi[inside]
        confirmed = False


@dataclass
class _Freeing:
    """Which candidates, suppressed, would loosen a side of a cell's interval (bounds at a
    fixpoint; `start_*` the intervals the propagation started from)."""

    compiled: _Compiled
    member: np.ndarray
    relation: np.ndarray
    by_cell: np.ndarray
    start_lo: np.ndarray
    start_hi: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    free: np.ndarray
    secondary_lo: int

    def freeing(self, cell: int, depth: int) -> set[int]:
        """Candidates that would free a pinned cell: loosen either side."""
        return (self.side(cell, "lo", depth, -1) or set()) | (
            self.side(cell, "hi", depth, -1) or set()
        )

    def opens(self, cell: int, side: str) -> bool:
        """Suppressing this cell loosens this side of its own interval."""
        if not self.free[cell]:
            return False
        if side == "hi":
            return bool(self.hi[cell] == self.start_hi[cell])
        return bool(self.lo[cell] == self.start_lo[cell] > self.secondary_lo)

    def side(self, cell: int, side: str, depth: int, skip: int) -> set[int] | None:
        """Candidates each of which loosens every source of this side of the cell's bound (not
        through relation `skip`), looking `depth` relations beyond; None when there are none."""
        value = self.lo[cell] if side == "lo" else self.hi[cell]
        sources: list[set[int]] = []
        if (self.start_lo[cell] if side == "lo" else self.start_hi[cell]) == value:
            sources.append({cell} if self.opens(cell, side) else set())
        for r in self.relation[self.by_cell[cell] : self.by_cell[cell + 1]]:
            if r == skip:
                continue
            needs = self.needs(cell, side, int(r), value)
            if needs is None:
                continue
            found: set[int] = set()
            for other, other_side in needs:
                if self.opens(other, other_side):
                    found.add(other)
                elif depth > 0:
                    found |= self.side(other, other_side, depth - 1, int(r)) or set()
            sources.append(found)
        result = set.intersection(*sources) if sources else set()
        return result or None

    def needs(self, cell: int, side: str, r: int, value: int) -> list[tuple[int, str]] | None:
        """If relation r reaches `value` on this side of the cell: the (cell, side) pairs whose
        loosening loosens it; else None."""
        c = self.compiled
        sums, orders = len(c.totals), len(c.smaller)
        flip = {"lo": "hi", "hi": "lo"}
        if r < sums:
            end = c.starts[r + 1] if r + 1 < sums else len(c.parts)
            parts = c.parts[c.starts[r] : end]
            total = int(c.totals[r])
            if cell == total:
                bound = (self.lo if side == "lo" else self.hi)[parts].sum()
                return [(int(p), side) for p in parts] if bound == value else None
            others = parts[parts != cell]
            if side == "lo":
                bound = self.lo[total] - self.hi[others].sum()
            else:
                bound = self.hi[total] - self.lo[others].sum()
            if bound != value:
                return None
            return [(total, side)] + [(int(o), flip[side]) for o in others]
        if r < sums + orders:
            small, large = int(c.smaller[r - sums]), int(c.larger[r - sums])
            if cell == small and side == "hi" and self.hi[large] == value:
                return [(large, "hi")]
            if cell == large and side == "lo" and self.lo[small] == value:
                return [(small, "lo")]
            return None
        k = r - sums - orders
        a, b, change = int(c.first[k]), int(c.second[k]), int(c.change[k])
        other = b if cell == a else a
        bound = self.lo[other] - change if side == "lo" else self.hi[other] + change
        return [(other, side)] if bound == value else None


def narrowed(lo: np.ndarray, hi: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Of these (suppressed) cells, those an attacker bounds to fewer than 7 values."""
    return cells[(hi[cells] - lo[cells] + 1) < NARROW_LIMIT]
