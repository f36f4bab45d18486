"""The composite engine's named, swappable methods: impute, treat, normalise, weight, aggregate.

Pure functions over pandas objects (rows = units, columns = indicators). Each family has a
registry (`IMPUTERS`, `TREATMENTS`, `NORMALISERS`, `WEIGHTERS`, `AGGREGATORS`) so that a spec file
can name a method. Where a method is shared with COINr (the JRC's R package for composite
indicators, v1.1.14) it follows COINr's formula exactly and is tested against COINr's own outputs
on its ASEM example; the English Indices of Deprivation (IoD) methods follow the IoD technical
report (exponential transformation, empirical-Bayes shrinkage of rates).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

# -- helpers ------------------------------------------------------------------------------------


def _float(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype(float)


TIE_RULES = ("min", "average", "max", "first")


def _rank(values: pd.Series, ties: str = "min", descending: bool = False) -> pd.Series:
    """Ranks of the non-missing values (1 = lowest, or highest if `descending`); NaN stays NaN.
    Tied values share the lowest (`min`), mean (`average`) or highest (`max`) of the ranks they
    span, or take them in the order of the units (`first`)."""
    if ties not in TIE_RULES:
        raise ValueError(f"unknown tie rule {ties!r}; allowed: {', '.join(TIE_RULES)}")
    values = _float(values)
    return values.rank(method=ties, ascending=not descending, na_option="keep")


def weighted_mean_sd(values: pd.Series, weights: pd.Series | None = None) -> tuple[float, float]:
    """Mean and standard deviation of the non-missing values. Unweighted: the n-1 standard
    deviation (as COINr). Weighted (e.g. by population; units with a missing weight are left
    out): m = sum(w x) / sum(w), sd = sqrt(sum(w (x - m)^2) / (V1 - V2 / V1)), V1 = sum(w),
    V2 = sum(w^2), the unbiased estimator for reliability weights, which is the n-1 standard
    deviation when every weight is equal and does not change when the weights are rescaled."""
    if weights is None:
        return values.mean(), values.std(ddof=1)
    w = _float(weights).reindex(values.index)
    ok = values.notna() & w.notna()
    x, w = values[ok].to_numpy(float), w[ok].to_numpy(float)
    v1, v2 = w.sum(), (w**2).sum()
    if v1 <= 0:
        return math.nan, math.nan
    mean = float((w * x).sum() / v1)
    denominator = v1 - v2 / v1
    if denominator <= 0:
        return mean, math.nan
    return mean, math.sqrt(float((w * (x - mean) ** 2).sum()) / denominator)


# -- normalisation -----------------------------------------------------------------------------


def n_minmax(
    values: pd.Series, low: float = 0.0, high: float = 100.0, fitted: dict | None = None
) -> pd.Series:
    """Min-max onto [low, high]: (x - min) / (max - min) * (high - low) + low (COINr n_minmax).
    `fitted` ({min, max}, e.g. a base period's) replaces the values' own min and max."""
    lo, hi = (fitted["min"], fitted["max"]) if fitted else (values.min(), values.max())
    return (values - lo) / (hi - lo) * (high - low) + low


def n_zscore(
    values: pd.Series, mean: float = 0.0, sd: float = 1.0, fitted: dict | None = None
) -> pd.Series:
    """Z-score with the n-1 standard deviation, rescaled to `mean` and `sd` (COINr n_zscore):
    (x - m) / s * sd + mean. `fitted` ({mean, sd}: a base period's, or weighted, see
    `weighted_mean_sd`) replaces the values' own m and s."""
    centre, spread = (
        (fitted["mean"], fitted["sd"]) if fitted else (values.mean(), values.std(ddof=1))
    )
    return (values - centre) / spread * sd + mean


def n_scaled(values: pd.Series, low: float = 0.0, high: float = 100.0) -> pd.Series:
    """Linear scaling by fixed bounds: (x - low) / (high - low) * 100 (COINr n_scaled)."""
    return (values - low) / (high - low) * 100


def n_rank(values: pd.Series, ties: str = "min") -> pd.Series:
    """Ranks, higher value = higher rank, ties take the minimum rank (COINr n_rank) unless
    `ties` says otherwise."""
    return _rank(values, ties)


def n_prank(values: pd.Series, ties: str = "min") -> pd.Series:
    """Percentile ranks: (rank - 1) / (n - 1), n = non-missing values (COINr n_prank)."""
    return (_rank(values, ties) - 1) / (values.notna().sum() - 1)


def n_borda(values: pd.Series, ties: str = "min") -> pd.Series:
    """Borda scores: rank - 1 (COINr n_borda)."""
    return _rank(values, ties) - 1


def n_fracmax(values: pd.Series, fitted: dict | None = None) -> pd.Series:
    """Fraction of the maximum: x / max (COINr n_fracmax); `fitted` ({max}) fixes the max."""
    return values / (fitted["max"] if fitted else values.max())


def n_dist2max(values: pd.Series, fitted: dict | None = None) -> pd.Series:
    """Distance to the maximum: 1 - (max - x) / (max - min) (COINr n_dist2max); `fitted`
    ({min, max}) fixes them."""
    lo, hi = (fitted["min"], fitted["max"]) if fitted else (values.min(), values.max())
    return 1 - (hi - values) / (hi - lo)


def n_dist2ref(values: pd.Series, ref: Any, cap_max: bool = False) -> pd.Series:
    """Distance to a reference unit (`ref` is its label): 1 - (x_ref - x) / (x_ref - min),
    optionally capped at 1 (COINr n_dist2ref, which takes a position instead of a label). If the
    reference is the minimum the result is NaN for it and ±inf elsewhere, as in COINr."""
    xref = values.loc[ref]
    with np.errstate(divide="ignore", invalid="ignore"):
        result = 1 - (xref - values) / (xref - values.min())
    if cap_max:
        result = result.where(~(result > 1), 1.0)
    return result


def n_goalposts(
    values: pd.Series, lower: float, upper: float, scale: float = 100.0, clip: bool = True
) -> pd.Series:
    """Goalposts: (x - lower) / (upper - lower), clipped to [0, 1], times `scale` (COINr
    n_goalposts with trunc2posts = TRUE). `lower` and `upper` are in the units of the values this
    function receives; `normalise` maps posts given in original units when direction is -1."""
    result = (values - lower) / (upper - lower)
    if clip:
        result = result.clip(lower=0.0, upper=1.0)
    return result * scale


def n_normal_scores(values: pd.Series, ties: str = "average") -> pd.Series:
    """Normal scores: r = rank (1 = lowest, average ranks for ties unless `ties` says
    otherwise), n = non-missing values, score = Phi^-1((r - 0.5) / n), Phi^-1 the standard
    normal quantile function."""
    n = values.notna().sum()
    r = _rank(values, ties)
    return pd.Series(stats.norm.ppf((r - 0.5) / n), index=values.index)


EXP_RANK_CONSTANT = 23.0


def n_exp_rank(values: pd.Series, ties: str = "average") -> pd.Series:
    """The IoD exponential transformation of ranks: r = rank with 1 = the highest value (tied
    values take their average rank, as the IoD; `ties: min` gives them their shared minimum
    rank, `max` the maximum, `first` the order of the units), N = non-missing values,
    R = (N + 1 - r) / N (so the highest value has R = 1, the lowest R = 1/N),
    X = -23 * ln(1 - R * (1 - exp(-100 / 23))). The highest value scores 100 and the lowest close
    to 0; the transformation stretches the most extreme (deprived) end."""
    n = values.notna().sum()
    r = _rank(values, ties, descending=True)
    big_r = (n + 1 - r) / n
    k = EXP_RANK_CONSTANT
    return -k * np.log(1 - big_r * (1 - math.exp(-100 / k)))


NORMALISERS: dict[str, Callable[..., pd.Series]] = {
    "none": lambda values: values,
    "minmax": n_minmax,
    "zscore": n_zscore,
    "scaled": n_scaled,
    "rank": n_rank,
    "prank": n_prank,
    "borda": n_borda,
    "fracmax": n_fracmax,
    "dist2max": n_dist2max,
    "dist2ref": n_dist2ref,
    "goalposts": n_goalposts,
    "normal_scores": n_normal_scores,
    "exp_rank": n_exp_rank,
}


# The normalisations whose parameters come from the data as a few numbers (min, max, mean, sd),
# so that they can be fitted once (on a base period, or with weights) and applied to any values;
# goalposts and fixed bounds take none. The rank-based ones rank within the values they are given.
FITTERS: dict[str, Callable[[pd.Series, pd.Series | None], dict[str, float]]] = {
    "none": lambda x, w: {},
    "minmax": lambda x, w: {"min": float(x.min()), "max": float(x.max())},
    "zscore": lambda x, w: dict(
        zip(("mean", "sd"), map(float, weighted_mean_sd(x, w)), strict=True)
    ),
    "scaled": lambda x, w: {},
    "fracmax": lambda x, w: {"max": float(x.max())},
    "dist2max": lambda x, w: {"min": float(x.min()), "max": float(x.max())},
    "goalposts": lambda x, w: {},
    "linear": lambda x, w: {},
}
WEIGHTED = frozenset({"zscore"})  # the normalisations that take weights (for the mean and sd)


def r_linear(values: pd.Series, offset: float = 0.0, factor: float = 1.0) -> pd.Series:
    """A linear rescaling: offset + factor * x."""
    return offset + factor * values


# Linear rescalings, applied after a normalisation (to any node of the tree): the order of the
# units never changes, only the scale.
RESCALERS: dict[str, Callable[..., pd.Series]] = {
    "linear": r_linear,
    "minmax": n_minmax,
    "zscore": n_zscore,
    "scaled": n_scaled,
}


def _directed(values: pd.Series, direction: int) -> pd.Series:
    if direction not in (1, -1):
        raise ValueError(f"direction must be 1 or -1, not {direction!r}")
    return _float(values) * direction


def fit(
    values: pd.Series, method: str, direction: int = 1, weights: pd.Series | None = None
) -> dict[str, float]:
    """The parameters `method` takes from `values * direction` (with `weights`, for zscore), to
    pass as `fitted` to `normalise` or `rescale`, e.g. {"mean": ..., "sd": ...}."""
    if method not in FITTERS:
        raise ValueError(f"{method} cannot be fitted; these can: {', '.join(FITTERS)}")
    return FITTERS[method](_directed(values, direction), weights)


def normalise(
    values: pd.Series,
    method: str,
    direction: int = 1,
    fitted: dict | None = None,
    **params: Any,
) -> pd.Series:
    """Normalise one indicator: `values * direction` first (direction 1 or -1), then the named
    method. NaNs stay NaN. For "goalposts", `lower`/`upper` are in the original units and with
    direction -1 they become (-upper, -lower), so a value at `lower` scores `scale` (as COINr).
    `fitted` (from `fit`, e.g. on a base period) replaces the parameters the method would take
    from the values themselves."""
    if method not in NORMALISERS:
        raise KeyError(f"unknown normalisation {method!r}; known: {', '.join(NORMALISERS)}")
    x = _directed(values, direction)
    if method == "goalposts" and direction == -1:
        params = {**params, "lower": -params["upper"], "upper": -params["lower"]}
    if fitted:  # goalposts and fixed bounds take nothing from the data
        params = {**params, "fitted": fitted}
    result = NORMALISERS[method](x, **params)
    return result.where(x.notna())


def rescale(values: pd.Series, method: str, fitted: dict | None = None, **params: Any) -> pd.Series:
    """Rescale linearly: "linear" (offset + factor * x), "minmax" (onto [low, high]), "zscore"
    (to mean and sd) or "scaled" (fixed bounds); `fitted` as for `normalise`."""
    if method not in RESCALERS:
        raise KeyError(f"unknown rescaling {method!r}; known: {', '.join(RESCALERS)}")
    x = _float(values)
    if fitted:
        params = {**params, "fitted": fitted}
    return RESCALERS[method](x, **params).where(x.notna())


# -- transforms --------------------------------------------------------------------------------

# name: (function, where it is defined and monotone, how it orders values: 1 keeps, -1 reverses)
TRANSFORMS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str, int]] = {
    "none": (lambda x: x, "", 1),
    "sqrt": (np.sqrt, ">= 0", 1),
    "cbrt": (np.cbrt, "", 1),
    "square": (np.square, ">= 0", 1),
    "cube": (lambda x: x**3, "", 1),
    "reciprocal": (lambda x: 1 / x, "all > 0 or all < 0", -1),
    "log": (np.log, "> 0", 1),
    "log1p": (np.log1p, "> -1", 1),
}


def _outside(x: pd.Series, domain: str) -> pd.Series:
    """The values outside a transform's domain (where it is defined and monotone)."""
    if domain == ">= 0":
        return x < 0
    if domain == "> 0":
        return x <= 0
    if domain == "> -1":
        return x <= -1
    if domain == "all > 0 or all < 0":
        mixed = bool((x > 0).any() and (x < 0).any())
        return (x <= 0) if mixed else (x == 0)
    return pd.Series(False, index=x.index)


def transform(values: pd.Series, name: str) -> tuple[pd.Series, int]:
    """Transform an indicator before normalisation; returns the values and how the transform
    orders them (1 keeps the order, -1 reverses it: a reciprocal), so that the indicator's
    direction, which speaks of its original values, can still be honoured. A value outside the
    transform's domain (where it is defined and monotone) is an error naming the first such unit;
    NaN stays NaN."""
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; allowed: {', '.join(TRANSFORMS)}")
    function, domain, order = TRANSFORMS[name]
    x = _float(values)
    bad = _outside(x, domain) & x.notna()
    if bad.any():
        unit = bad[bad].index[0]
        raise ValueError(
            f"{name} needs values {domain}; {bad.sum()} unit(s) are not, e.g. {unit} ({x[unit]:g})"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        result = pd.Series(function(x.to_numpy(float)), index=x.index, name=values.name)
    return result, order


def transform_value(value: float, name: str) -> float:
    """One number (a goalpost or bound given in the indicator's original units) transformed."""
    return float(TRANSFORMS[name][0](np.array([float(value)]))[0])


# -- imputation --------------------------------------------------------------------------------


def _by_group(data: pd.DataFrame, groups: pd.Series | None, how: str) -> pd.DataFrame:
    if groups is None:
        raise ValueError("group imputation needs `groups`")
    keys = groups.reindex(data.index)
    return data.fillna(data.groupby(keys).transform(how))


def _sklearn(data: pd.DataFrame, imputer: Any, scale: bool) -> pd.DataFrame:
    """Run an sklearn imputer, optionally on z-scored columns (so no indicator dominates the
    distances by its units), mapping the result back to the original scale. A column with no
    value at all stays empty."""
    usable = data.loc[:, data.notna().any()]
    mean, sd = usable.mean(), usable.std(ddof=1).replace(0, 1).fillna(1)
    x = (usable - mean) / sd if scale else usable
    filled = imputer.fit_transform(x.to_numpy(float))
    out = pd.DataFrame(filled, index=usable.index, columns=usable.columns)
    out = out * sd + mean if scale else out
    return data.fillna(out)  # observed values stay exactly as they were


def _knn(
    data: pd.DataFrame, n_neighbors: int = 5, scale: bool = True, **params: Any
) -> pd.DataFrame:
    from sklearn.impute import KNNImputer

    return _sklearn(data, KNNImputer(n_neighbors=n_neighbors, **params), scale)


def _iterative(
    data: pd.DataFrame, seed: int = 0, scale: bool = False, **params: Any
) -> pd.DataFrame:
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    return _sklearn(data, IterativeImputer(random_state=seed, **params), scale)


IMPUTERS: dict[str, Callable[..., pd.DataFrame]] = {
    "none": lambda data, groups=None: data,
    "mean": lambda data, groups=None: data.fillna(data.mean()),
    "median": lambda data, groups=None: data.fillna(data.median()),
    "group_mean": lambda data, groups=None: _by_group(data, groups, "mean"),
    "group_median": lambda data, groups=None: _by_group(data, groups, "median"),
    "knn": lambda data, groups=None, **params: _knn(data, **params),
    "iterative": lambda data, groups=None, **params: _iterative(data, **params),
}


def impute(
    data: pd.DataFrame, method: str, groups: pd.Series | None = None, **params: Any
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Fill missing values; returns the imputed frame and the count imputed per column.

    "mean"/"median": the column's (COINr i_mean/i_median); "group_mean"/"group_median": the
    column's within the unit's group (`groups`, aligned on the index; a group with no value, or a
    unit with no group, keeps NaN; COINr i_mean_grp/i_median_grp); "knn": sklearn KNNImputer
    (`n_neighbors`, default 5) on z-scored columns unless `scale=False`; "iterative": sklearn
    IterativeImputer with `random_state=seed` (default 0), other params passed through."""
    if method not in IMPUTERS:
        raise KeyError(f"unknown imputation {method!r}; known: {', '.join(IMPUTERS)}")
    data = data.astype(float)
    result = IMPUTERS[method](data, groups=groups, **params)
    counts = (data.isna() & result.notna()).sum()
    return result, {str(k): int(v) for k, v in counts.items()}


# -- outlier treatment -------------------------------------------------------------------------


def skew(values: pd.Series | np.ndarray) -> float:
    """Sample skewness, type 2 (as Excel, e1071 type 2 and COINr skew); NaNs dropped."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n < 3:
        return float("nan")
    d = x - x.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        y = math.sqrt(n) * np.sum(d**3) / np.sum(d**2) ** 1.5
    return float(y * math.sqrt(n * (n - 1)) / (n - 2))


def kurtosis(values: pd.Series | np.ndarray) -> float:
    """Sample excess kurtosis, type 2 (as Excel, e1071 type 2 and COINr kurt); NaNs dropped."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n < 4:
        return float("nan")
    d = x - x.mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = n * np.sum(d**4) / np.sum(d**2) ** 2
    return float(((n + 1) * (r - 3) + 6) * (n - 1) / ((n - 2) * (n - 3)))


def _passes(x: np.ndarray, skew_thresh: float, kurt_thresh: float) -> bool | None:
    """COINr check_SkewKurt: passes when |skew| < skew_thresh OR kurtosis < kurt_thresh; None when
    skew or kurtosis cannot be computed (fewer than 4 values, or no spread)."""
    s, k = skew(x), kurtosis(x)
    if math.isnan(s) or math.isnan(k):
        return None
    return abs(s) < skew_thresh or k < kurt_thresh


def _winsorise(
    x: np.ndarray, winmax: int, skew_thresh: float, kurt_thresh: float
) -> tuple[np.ndarray, int, np.ndarray]:
    """COINr `winsorise`: while failing and fewer than `winmax` points treated, replace the most
    extreme value(s) on the side of the skew (high if skew >= 0) by the next value. As in COINr,
    the count is the number of points currently tied at the winsorised extreme(s), which counts
    every point moved so far. Returns values, count and labels ("winhi"/"winlo"/"")."""
    x = x.copy()
    labels = np.full(len(x), "", dtype=object)
    imax = imin = np.array([], dtype=int)
    nwin = 0
    passing = _passes(x, skew_thresh, kurt_thresh)
    while passing is False and nwin < winmax:
        if skew(x) >= 0:
            imax = np.flatnonzero(x == np.nanmax(x))
            rest = np.delete(x, imax)
            if np.all(np.isnan(rest)):
                break
            x[imax] = np.nanmax(rest)
        else:
            imin = np.flatnonzero(x == np.nanmin(x))
            rest = np.delete(x, imin)
            if np.all(np.isnan(rest)):
                break
            x[imin] = np.nanmin(rest)
        nwin = len(imax) + len(imin)
        passing = _passes(x, skew_thresh, kurt_thresh)
    labels[imax] = "winhi"
    labels[imin] = "winlo"
    return x, nwin, labels


def _log_ct(x: np.ndarray) -> np.ndarray:
    """COINr log_CT: log(x - min + 0.01 * (max - min)), whatever the skew."""
    lo, hi = np.nanmin(x), np.nanmax(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x - lo + 0.01 * (hi - lo))


def _log_signed(x: np.ndarray) -> np.ndarray:
    """COINr log_CT_plus: skew > 0: log(x - min + a); otherwise -log(max + a - x); a = 0.01 *
    (max - min). Keeps the order of the values and reduces the skew on either side."""
    lo, hi = np.nanmin(x), np.nanmax(x)
    a = 0.01 * (hi - lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x - lo + a) if skew(x) > 0 else -np.log(hi + a - x)


_LOGS = {"log": _log_signed, "log_ct": _log_ct}


def _labelled(index: pd.Index, labels: np.ndarray) -> dict[str, str]:
    return {str(unit): str(label) for unit, label in zip(index, labels, strict=True) if label}


def _treat(
    values: pd.Series,
    winsorise: bool,
    log: str | None,
    winmax: int = 5,
    skew_thresh: float = 2.0,
    kurt_thresh: float = 3.5,
) -> tuple[pd.Series, dict]:
    x = _float(values).to_numpy()
    passing = _passes(x, skew_thresh, kurt_thresh)
    details: dict[str, Any] = {
        "treated": False,
        "winsorised_points": 0,
        "log": False,
        "skew": skew(x),
        "kurtosis": kurtosis(x),
        "pass": passing,
        "points": {},
    }
    out = x
    if passing is False:
        if winsorise:
            out, nwin, labels = _winsorise(x, winmax, skew_thresh, kurt_thresh)
            details["winsorised_points"] = nwin
            details["points"] = _labelled(values.index, labels)
            passing = _passes(out, skew_thresh, kurt_thresh)
        if log and passing is False:
            # the log transform applies to the ORIGINAL values, not the winsorised ones (COINr's
            # default combine_treat = FALSE)
            out = _LOGS[log](x)
            details["log"] = True
            details["points"] = _labelled(values.index, np.where(np.isnan(x), "", log))
            passing = _passes(out, skew_thresh, kurt_thresh)
        details["treated"] = bool(details["winsorised_points"] or details["log"])
    details["skew_after"] = skew(out)
    details["kurtosis_after"] = kurtosis(out)
    details["pass_after"] = passing
    return pd.Series(out, index=values.index, name=values.name), details


TREATMENTS: dict[str, Callable[..., tuple[pd.Series, dict]]] = {
    "none": lambda values, **params: _treat(values, winsorise=False, log=None, **params),
    "winsorise": lambda values, **params: _treat(values, winsorise=True, log=None, **params),
    "log": lambda values, **params: _treat(values, winsorise=False, log="log", **params),
    "log_ct": lambda values, **params: _treat(values, winsorise=False, log="log_ct", **params),
    "coinr": lambda values, log_method="log", **params: _treat(
        values, winsorise=True, log=log_method, **params
    ),
}


def treat(values: pd.Series, method: str, **params: Any) -> tuple[pd.Series, dict]:
    """Treat one indicator for outliers; returns the treated values and the details.

    An indicator fails when |skew| >= `skew_thresh` (2) AND kurtosis >= `kurt_thresh` (3.5),
    type-2 sample skew and kurtosis (COINr check_SkewKurt); only failing indicators are treated.
    "none": nothing (details still report skew and kurtosis). "winsorise": COINr winsorise, up to
    `winmax` (5) points one at a time. "log": COINr log_CT_plus (sign-aware; positive skew
    log(x - min + 0.01 * range), otherwise -log(max + 0.01 * range - x)); "log_ct": COINr log_CT
    (the positive-skew formula whatever the skew). "coinr": COINr's default two-stage treatment:
    winsorise; if still failing, the log transform (`log_method`, default "log"; COINr 1.1.14's
    own default f2 is log_CT, i.e. `log_method="log_ct"`) of the ORIGINAL values.

    Details: treated, winsorised_points (COINr's nwin: points moved by the winsorising stage,
    reported even when the log stage then replaced its result), log (the output is the log of
    the original values), skew, kurtosis, pass (before),
    skew_after, kurtosis_after, pass_after and points ({unit: "winhi" | "winlo" | log name}
    for the treated units only; JSON-friendly like the rest). With fewer than 4 values or no spread, pass is None and nothing is treated.
    """
    if method not in TREATMENTS:
        raise KeyError(f"unknown treatment {method!r}; known: {', '.join(TREATMENTS)}")
    return TREATMENTS[method](values, **params)


# -- rates -------------------------------------------------------------------------------------


def shrink_rates(
    numerator: pd.Series, denominator: pd.Series, groups: pd.Series | None = None
) -> pd.Series:
    """Empirical-Bayes shrinkage of small-area rates towards their larger area's rate, as the
    English Indices of Deprivation do for rates on small counts: the method-of-moments
    global/local EB estimator of Marshall, R. J. (1991), "Mapping disease and mortality rates
    using empirical Bayes estimators", Journal of the Royal Statistical Society C (Applied
    Statistics) 40(2), 283-294.

    Per group (all units form one group if `groups` is None), over the units with a positive
    denominator: raw_i = num_i / den_i; prior mean m = sum(num) / sum(den); between-area
    variance s2 = max(0, sum(den_i * (raw_i - m)^2) / sum(den) - m / mean(den)); shrinkage
    factor w_i = s2 / (s2 + m / den_i); shrunk_i = w_i * raw_i + (1 - w_i) * m. A unit with
    denominator 0 gets the group rate m; when m = 0 every unit gets 0. A missing numerator or
    denominator gives NaN.
    """
    num, den = _float(numerator), _float(denominator)
    keys = pd.Series(0, index=num.index) if groups is None else groups.reindex(num.index)
    result = pd.Series(np.nan, index=num.index, name=numerator.name)
    ok = num.notna() & den.notna() & keys.notna()
    for _, index in keys[ok].groupby(keys[ok]).groups.items():
        n, d = num.loc[index], den.loc[index]
        pos = d > 0
        if not pos.any():
            continue
        m = n[pos].sum() / d[pos].sum()
        raw = n[pos] / d[pos]
        s2 = max(0.0, (d[pos] * (raw - m) ** 2).sum() / d[pos].sum() - m / d[pos].mean())
        shrunk = pd.Series(m, index=index, dtype=float)
        if m > 0:
            w = s2 / (s2 + m / d[pos])
            shrunk[pos] = w * raw + (1 - w) * m
        result.loc[index] = shrunk
    return result


# -- weights -----------------------------------------------------------------------------------


def _standardise(data: pd.DataFrame) -> np.ndarray:
    data = data.apply(_float).dropna()
    centred = data - data.mean()
    return (centred / np.sqrt((centred**2).sum() / (len(data) - 1))).to_numpy()


def _by_groups(
    data: pd.DataFrame, groups: pd.Series | None, one: Callable[[pd.DataFrame], pd.Series]
) -> pd.Series:
    if groups is None:
        return one(data)
    parts = [one(data[list(cols)]) for _, cols in groups.groupby(groups, sort=False).groups.items()]
    return pd.concat(parts).reindex(data.columns)


def pca_weights(data: pd.DataFrame, groups: pd.Series | None = None) -> pd.Series:
    """COINr's PCA weights (get_PCA): the loadings of the first principal component of the
    centred and scaled columns, i.e. the unit-length leading eigenvector of the correlation
    matrix (rows with a missing value dropped, as COINr's na.omit). They are neither squared nor
    rescaled to sum 1, and may be negative. PCA fixes them only up to sign, and COINr returns
    whatever sign its LAPACK gives; here the sign is fixed so that the loadings sum to >= 0.
    `groups` (column name -> group) does one PCA per group, as COINr's by_groups."""

    def one(block: pd.DataFrame) -> pd.Series:
        _, _, vt = np.linalg.svd(_standardise(block), full_matrices=False)
        v = vt[0]
        if v.sum() < 0:
            v = -v
        return pd.Series(v, index=block.columns)

    return _by_groups(data, groups, one)


def factor_weights(data: pd.DataFrame, seed: int = 0, groups: pd.Series | None = None) -> pd.Series:
    """Factor-analysis weights: sklearn FactorAnalysis(n_components=1) on the z-scored columns
    (rows with a missing value dropped); weight = squared loading / sum of squared loadings, so
    the weights are >= 0 and sum to 1 (the OECD/JRC handbook's rule with a single factor)."""
    from sklearn.decomposition import FactorAnalysis

    def one(block: pd.DataFrame) -> pd.Series:
        model = FactorAnalysis(n_components=1, random_state=seed).fit(_standardise(block))
        squared = model.components_[0] ** 2
        return pd.Series(squared / squared.sum(), index=block.columns)

    return _by_groups(data, groups, one)


WEIGHTERS: dict[str, Callable[..., pd.Series]] = {
    "equal": lambda data, **params: pd.Series(1 / data.shape[1], index=data.columns),
    "pca": lambda data, **params: pca_weights(data, **params),
    "factor": lambda data, **params: factor_weights(data, **params),
}


# -- aggregation -------------------------------------------------------------------------------


def _masked_weights(data: pd.DataFrame, weights: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values and weights as arrays; weights of missing values set to 0 (so they are ignored and
    the remaining weights renormalised, as COINr does for every mean)."""
    x = data.apply(_float).to_numpy()
    w = _float(weights.reindex(data.columns)).to_numpy()
    if np.isnan(w).any():
        missing = [c for c, v in zip(data.columns, w, strict=True) if np.isnan(v)]
        raise ValueError(f"no weight for column(s) {', '.join(map(str, missing))}")
    return x, np.where(np.isnan(x), 0.0, w)


def _result(data: pd.DataFrame, values: np.ndarray, present: np.ndarray) -> pd.Series:
    return pd.Series(np.where(present, values, np.nan), index=data.index)


def a_arithmetic(data: pd.DataFrame, weights: pd.Series) -> pd.Series:
    """Weighted arithmetic mean sum(w x) / sum(w) over the non-missing values (COINr a_amean)."""
    x, w = _masked_weights(data, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.nansum(w * np.nan_to_num(x), axis=1) / w.sum(axis=1)
    return _result(data, values, ~np.isnan(x).all(axis=1))


def a_geometric(data: pd.DataFrame, weights: pd.Series) -> pd.Series:
    """Weighted geometric mean exp(sum(w ln x) / sum(w)); values must be > 0 (COINr a_gmean)."""
    x, w = _masked_weights(data, weights)
    if (x <= 0).any():
        raise ValueError("the geometric mean needs positive values")
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.exp(np.nansum(w * np.log(np.where(np.isnan(x), 1.0, x)), 1) / w.sum(1))
    return _result(data, values, ~np.isnan(x).all(axis=1))


def a_harmonic(data: pd.DataFrame, weights: pd.Series) -> pd.Series:
    """Weighted harmonic mean sum(w) / sum(w / x); values must be non-zero (COINr a_hmean)."""
    x, w = _masked_weights(data, weights)
    if (x == 0).any():
        raise ValueError("the harmonic mean needs non-zero values")
    with np.errstate(invalid="ignore", divide="ignore"):
        values = w.sum(axis=1) / np.nansum(w / np.where(np.isnan(x), 1.0, x), axis=1)
    return _result(data, values, ~np.isnan(x).all(axis=1))


def a_generalised(data: pd.DataFrame, weights: pd.Series, p: float = 1.0) -> pd.Series:
    """Weighted generalised (power) mean (sum(w x^p) / sum(w))^(1/p) (COINr a_genmean); p = 0 is
    the geometric mean (its limit); negative p needs positive values."""
    if p == 0:
        return a_geometric(data, weights)
    x, w = _masked_weights(data, weights)
    if p < 0 and (x <= 0).any():
        raise ValueError("the generalised mean with p < 0 needs positive values")
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (np.nansum(w * np.where(np.isnan(x), 1.0, x) ** p, 1) / w.sum(1)) ** (1 / p)
    return _result(data, values, ~np.isnan(x).all(axis=1))


def a_weighted_sum(data: pd.DataFrame, weights: pd.Series) -> pd.Series:
    """Plain weighted sum sum(w x), weights NOT renormalised (as the IMD, whose domain weights sum
    to 0.999); a row with any missing value gives NaN, since the sum would be biased down."""
    x, _ = _masked_weights(data, weights)
    w = _float(weights.reindex(data.columns)).to_numpy()
    return pd.Series(x @ w, index=data.index)


def a_copeland(data: pd.DataFrame, weights: pd.Series) -> pd.Series:
    """Copeland scores (COINr a_copeland): with weights rescaled to sum 1, the outranking matrix
    has o_ij = sum of w where unit i beats j + half the sum of w where they tie (comparisons with
    a missing value count for neither), o_ji = 1 - o_ij; the score is the number of units i
    outranks (o_ij > 0.5) minus the number that outrank it (o_ij < 0.5)."""
    x = data.apply(_float).to_numpy()
    w = _float(weights.reindex(data.columns)).to_numpy()
    w = w / math.fsum(w)
    n = len(x)
    orm = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            orm[i, j] = math.fsum(w[x[i] > x[j]]) + math.fsum(w[x[i] == x[j]]) / 2
            orm[j, i] = 1 - orm[i, j]
    score = np.sign(orm - 0.5)
    np.fill_diagonal(score, 0)
    return pd.Series(score.sum(axis=1), index=data.index)


AGGREGATORS: dict[str, Callable[..., pd.Series]] = {
    "arithmetic": a_arithmetic,
    "geometric": a_geometric,
    "harmonic": a_harmonic,
    "generalised": a_generalised,
    "weighted_sum": a_weighted_sum,
    "copeland": a_copeland,
}


def aggregate(data: pd.DataFrame, weights: pd.Series, method: str, **params: Any) -> pd.Series:
    """Aggregate the columns of `data` row by row with `weights` (aligned on the column names).
    For the means the weights are relative (they need not sum to 1), missing values are ignored
    and the remaining weights renormalised, and a row with no value gives NaN; "weighted_sum"
    uses the weights as they are; "copeland" counts pairwise wins minus losses."""
    if method not in AGGREGATORS:
        raise KeyError(f"unknown aggregation {method!r}; known: {', '.join(AGGREGATORS)}")
    return AGGREGATORS[method](data, weights, **params)


# -- ranks -------------------------------------------------------------------------------------


def rank_desc(values: pd.Series, ties: str = "min") -> pd.Series:
    """Rank with 1 = the highest value; ties take the minimum rank (or as `ties` says, see
    `_rank`); NaN stays NaN (float)."""
    return _rank(values, ties, descending=True)


QUANTILE_RULES = ("ceil", "equal_count")


def ntile(rank: pd.Series, n: int, total: int | None = None, rule: str = "ceil") -> pd.Series:
    """The n-tile of each rank, 1 = the top (1/n) of units; N = the number of ranked units (or
    `total`). Rule "ceil": ceil(n * rank / N) (the IoD's deciles); "equal_count":
    floor((rank - 1) * n / N) + 1 (equal-count groups, the rule of several national indices).
    They differ only at group boundaries: with N = 15, n = 10, rank 2 is in decile 2 by "ceil" and decile 1
    by "equal_count". Missing ranks stay missing (nullable integers)."""
    if rule not in QUANTILE_RULES:
        raise ValueError(f"unknown quantile rule {rule!r}; allowed: {', '.join(QUANTILE_RULES)}")
    ranks = _float(rank)
    big_n = int(ranks.notna().sum()) if total is None else int(total)
    if rule == "equal_count":
        return (np.floor((ranks - 1) * n / big_n) + 1).astype("Int64")
    return np.ceil(n * ranks / big_n).astype("Int64")
