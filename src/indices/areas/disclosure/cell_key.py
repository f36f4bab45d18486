"""The cell-key method (ONS, Census 2021): consistent noise on every published count.

Record keys. Each person gets a record key, a whole number 0..255 taken from the SHA-256 of
their pseudonym (`person_id`, itself a keyed HMAC, so keys are as secret as the pseudonym key):
the same person has the same key in every table and every release. A cell's key is the sum of
its persons' record keys modulo 256, computed beside the count in the private area counts
(`indices.areas.area_counts_sql`); keys are never published.

The perturbation table (ptable) gives, for each cell value and cell key, the noise to add. Its
rows are built as the `ptable` R package of sdcTools (Destatis; Giessing 2016, after Marley and
Leaver 2011) builds them, by maximum entropy under these constraints:

- noise of at most D either way;
- zero mean (unbiased) for every original value, variance V where the row allows it (the rows
  of the smallest values cannot always reach V: they take the feasible variance nearest to V);
- no negative output and no positive output of 1..js ("small counts are never published");
- 0 stays 0 (an empty cell has no persons and no key; false positives are never made).

Rows exist for values 0..js + D + 1; every larger value uses the last row, whose noise is
symmetric, -D..D. Each row's probabilities are then spread over the 256 cell keys in whole
slots (largest remainders, then adjusted so the noise of each row is exactly unbiased where
that is possible), the noise values in ascending order over the keys, as the ptables of the
ONS `cell-key-perturbation` package are laid out (columns pcv, ckey, pvalue).

ONS have not published the Census 2021 parameters in full; we follow the published method with
D = 4, V = 2.5 and js = 2 (ONS: small counts are not published as 1 or 2). With D = 3 the row of
4 would have to reach V with noise -1..3 only, putting most of its mass on -1 and +3. The same cell (the
same persons) always gets the same published value, in every table and every release; a cell's
published value changes only when its persons do, and then by fresh noise, so the difference
of two releases does not reveal who was added.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

import numpy as np

RECORD_KEYS = 256
MAX_NOISE = 4  # D
VARIANCE = 2.5  # V
SMALL_COUNT = 2  # js: no count of 1..js is published
DOMAIN = "indices cell key:"  # the record key is not the pseudonym's own bits


def record_key_sql(person_id: str) -> str:
    """SQL for a person's record key, 0..255, from their pseudonym (a column or expression)."""
    return f"CAST(('0x' || left(sha256('{DOMAIN}' || {person_id}), 2)) AS INTEGER)"


def record_key(person_id: str) -> int:
    """Python twin of `record_key_sql`."""
    return int(hashlib.sha256((DOMAIN + person_id).encode()).hexdigest()[:2], 16)


@dataclass(frozen=True)
class PTable:
    """The perturbation table: `noise[min(value, len(noise) - 1), cell_key]`."""

    max_noise: int
    variance: float
    js: int
    noise: np.ndarray  # (rows, RECORD_KEYS) int64

    def perturb(self, values: np.ndarray, cell_keys: np.ndarray) -> np.ndarray:
        """The published values of cells of these whole values and cell keys (0..255)."""
        values = np.asarray(values, dtype=np.int64)
        if (values < 0).any():
            raise ValueError("the cell-key method needs whole counts of 0 or more")
        rows = np.minimum(values, len(self.noise) - 1)
        return values + self.noise[rows, np.asarray(cell_keys, dtype=np.int64) % RECORD_KEYS]

    def support(self, value: int) -> list[int]:
        """The noises a cell of this value can get (those with at least one cell key)."""
        return sorted({int(n) for n in self.noise[min(value, len(self.noise) - 1)]})

    def preimage(self, published: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each published value, the least and greatest true value that could give it."""
        published = np.asarray(published, dtype=np.int64)
        last = len(self.noise) - 1
        span = last + 2 * self.max_noise + 1
        lowest = np.full(span + 1, np.iinfo(np.int64).max)
        highest = np.full(span + 1, -1)
        for value in range(span + self.max_noise + 1):
            for noise in self.support(value):
                out = value + noise
                if out <= span:
                    lowest[out] = min(lowest[out], value)
                    highest[out] = max(highest[out], value)
        generic = self.support(last)
        # Above the tabulated span every true value uses the last row.
        lo = np.where(
            published <= span, lowest[np.minimum(published, span)], published - max(generic)
        )
        hi = np.where(
            published <= span, highest[np.minimum(published, span)], published - min(generic)
        )
        return lo, hi

    def row_stats(self) -> list[dict]:
        """Per row: its value, the noise's mean and variance, and the chance of no change."""
        stats = []
        for value, row in enumerate(self.noise):
            stats.append(
                {
                    "value": value if value < len(self.noise) - 1 else f"{value}+",
                    "mean": float(row.mean()),
                    "variance": float(row.var()),
                    "p_stay": float((row == 0).mean()),
                }
            )
        return stats

    def parameters(self) -> dict:
        """What a manifest records: the parameters and a hash of the table itself."""
        return {
            "max_noise": self.max_noise,
            "variance": self.variance,
            "small_count_threshold": self.js,
            "record_keys": f"0..{RECORD_KEYS - 1}, from SHA-256 of the pseudonym",
            "ptable_rows": len(self.noise),
            "ptable_sha256": hashlib.sha256(self.noise.astype("<i8").tobytes()).hexdigest(),
        }


@cache
def ptable(max_noise: int = MAX_NOISE, variance: float = VARIANCE, js: int = SMALL_COUNT) -> PTable:
    """The perturbation table of these parameters (module docstring)."""
    if max_noise < 1 or variance <= 0 or js < 0:
        raise ValueError("a ptable needs D >= 1, V > 0 and js >= 0")
    rows = [_row(value, max_noise, variance, js) for value in range(js + max_noise + 2)]
    return PTable(max_noise, variance, js, np.array(rows, dtype=np.int64))


def _row(value: int, max_noise: int, variance: float, js: int) -> list[int]:
    """The noise for each of the 256 cell keys of one original value."""
    if value == 0:
        return [0] * RECORD_KEYS
    offsets = np.array(
        [
            d
            for d in range(-max_noise, max_noise + 1)
            if value + d >= 0 and (value + d == 0 or value + d > js)
        ]
    )
    probabilities = _max_entropy(offsets, variance)
    slots = _whole_slots(offsets, probabilities)
    return [int(d) for d, n in zip(offsets, slots, strict=True) for _ in range(n)]


def _max_entropy(offsets: np.ndarray, variance: float) -> np.ndarray:
    """The maximum-entropy distribution over the offsets with mean 0 and the variance nearest
    to `variance` that mean 0 allows (p ∝ exp(a·d + b·d²), found by Newton's method)."""
    below, above = offsets[offsets < 0], offsets[offsets > 0]
    if not len(below) or not len(above):  # mean 0 is out of reach: the offset nearest 0
        return (np.abs(offsets) == np.abs(offsets).min()).astype(float)
    # With mean 0 the variance ranges over what two-point mixtures give: -d1·d2.
    pairs = [-int(d1) * int(d2) for d1 in below for d2 in above]
    least = 0.0 if 0 in offsets else min(pairs)
    most = max(pairs)
    if most - least < 1e-9:
        d1, d2 = below[-1], above[0]
        return np.where(offsets == d1, d2 / (d2 - d1), 0) + np.where(
            offsets == d2, -d1 / (d2 - d1), 0
        )
    margin = 0.02 * (most - least)
    target = min(max(variance, least + margin), most - margin)
    d = offsets.astype(float)
    features = np.stack([d, d * d - target])
    theta = np.zeros(2)
    for _ in range(200):
        logits = theta @ features
        p = np.exp(logits - logits.max())
        p /= p.sum()
        gradient = features @ p
        if np.abs(gradient).max() < 1e-12:
            break
        centred = features - gradient[:, None]
        hessian = (centred * p) @ centred.T
        step = np.linalg.solve(hessian + 1e-12 * np.eye(2), gradient)
        dual = np.log(np.exp(logits - logits.max()).sum()) + logits.max()
        scale = 1.0
        while scale > 1e-8:  # backtracking on the (convex) dual
            trial = (theta - scale * step) @ features
            if np.log(np.exp(trial - trial.max()).sum()) + trial.max() <= dual:
                break
            scale /= 2
        theta = theta - scale * step
    logits = theta @ features
    p = np.exp(logits - logits.max())
    return p / p.sum()


def _whole_slots(offsets: np.ndarray, probabilities: np.ndarray) -> list[int]:
    """The probabilities as whole numbers of the 256 cell keys: largest remainders, then slots
    moved between neighbouring offsets until the noise sums to 0 over the keys (unbiased)."""
    exact = probabilities * RECORD_KEYS
    slots = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - slots), kind="stable")[: RECORD_KEYS - slots.sum()]:
        slots[index] += 1
    while (bias := int(slots @ offsets)) != 0:
        # Move one key from one offset to another, shrinking the bias the most, never emptying
        # an offset that had keys; ties go to the move that changes the variance least.
        moves = [
            (
                abs(bias + int(offsets[t] - offsets[f])),
                abs(int(offsets[t] ** 2 - offsets[f] ** 2)),
                f,
                t,
            )
            for f in range(len(offsets))
            for t in range(len(offsets))
            if f != t and slots[f] > 1
        ]
        best = min(moves, default=None)
        if best is None or best[0] >= abs(bias):
            break  # no unbiased whole-slot row: keep the least bias
        slots[best[2]] -= 1
        slots[best[3]] += 1
    return [int(n) for n in slots]
