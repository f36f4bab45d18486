"""Index reports: one self-contained HTML page per release, to look at rather than read, and a
short Markdown summary for Dagster's asset metadata.

The page holds the index's header and weights (with the run's warnings and, for an index with
periods, each period's scores), the score distribution, deciles by larger area, the domains'
contributions, the largest rank moves since the previous release and the rank uncertainty; with
periods, the plots show the latest period. Every plot is a PNG embedded as a data URI (no external files, no network), written
without metadata so that the same inputs give byte-identical output.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Collection

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from indices.composite.engine import PERIOD, Result
from indices.composite.spec import Indicator, Node

MAX_GROUPS = 30  # groups shown in the deciles chart
MOVES_SHOWN = 15  # rows in each table of rank moves
MAX_INTERVALS = 100  # areas drawn one by one in the uncertainty chart
DPI = 120  # pixels per inch of the embedded PNGs
CSS_DPI = 96  # CSS pixels per inch: images are shown at DPI / CSS_DPI density
DECILE_COLOURS = [matplotlib.colormaps["RdYlBu"](x) for x in np.linspace(0.02, 0.98, 10)]
UP, DOWN = "#b2182b", "#2166ac"  # moves towards rank 1 (more in need), away from it
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.frameon": False,
}
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  line-height: 1.5; color: #1f2328; background: #fff; margin: 0; }
main { max-width: 62rem; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }
h1 { font-size: 1.6rem; line-height: 1.25; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #d0d7de; padding-bottom: .25rem;
  margin-top: 2.5rem; }
.release { color: #57606a; margin: 0 0 1rem; font-family: ui-monospace, Menlo, monospace; }
nav ol { display: flex; flex-wrap: wrap; gap: .25rem 1.25rem; padding: 0; list-style: none; }
.figures { display: flex; flex-wrap: wrap; gap: .75rem; margin: 1rem 0; }
.figures div { background: #f6f8fa; border-radius: 6px; padding: .5rem .9rem; min-width: 8rem; }
.figures dt { color: #57606a; font-size: .8rem; }
.figures dd { margin: 0; font-size: 1.3rem; font-weight: 600; }
table { border-collapse: collapse; font-size: .875rem; margin: .5rem 0 1rem; }
caption { text-align: left; font-weight: 600; padding-bottom: .25rem; }
th, td { padding: .2rem .5rem; border-bottom: 1px solid #eaeef2; text-align: left;
  vertical-align: top; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.tables { display: flex; flex-wrap: wrap; gap: 0 1.25rem; }
.tables table { font-size: .8rem; }
.tables th, .tables td { padding: .15rem .4rem; }
figure { margin: 1rem 0; }
img { max-width: 100%; height: auto; }
figcaption, .note { color: #57606a; font-size: .9rem; }
.note { background: #f6f8fa; border-left: 4px solid #d0d7de; padding: .5rem .75rem; }
"""
SECTIONS = {
    "distribution": "Score distribution",
    "groups": "Deciles by larger area",
    "contributions": "Domain contributions",
    "moves": "Rank moves since the previous release",
    "uncertainty": "Rank uncertainty",
}


# -- small helpers -------------------------------------------------------------------------------


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _n(value: float) -> str:
    """A count or rank with thousands separators."""
    return f"{int(round(value)):,}"


def _figure(width: float, height: float) -> Figure:
    """A figure outside pyplot (no global state); call within `matplotlib.rc_context(STYLE)`."""
    return Figure(figsize=(width, height), layout="constrained")


def _png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes, without the Software tag, so renders are byte-identical."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _img(fig: Figure, alt: str, caption: str = "") -> str:
    """A figure as an embedded, accessible <figure> shown at CSS_DPI/DPI of its pixel size."""
    width, height = fig.get_size_inches()
    png = _png(fig)
    img = (
        f'<img src="{_data_uri(png)}" alt="{_e(alt)}" '
        f'width="{round(width * CSS_DPI)}" height="{round(height * CSS_DPI)}">'
    )
    caption_html = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<figure>{img}{caption_html}</figure>"


def _table(frame: pd.DataFrame, numeric: Collection[str] = (), caption: str = "") -> str:
    """A DataFrame of strings as an HTML table; columns in `numeric` are right-aligned."""

    def cell(tag: str, column: str, value: object) -> str:
        align = ' class="num"' if column in numeric else ""
        scope = ' scope="col"' if tag == "th" else ""
        return f"<{tag}{align}{scope}>{_e(value)}</{tag}>"

    head = "".join(cell("th", c, c) for c in frame.columns)
    rows = "".join(
        "<tr>"
        + "".join(cell("td", c, v) for c, v in zip(frame.columns, row, strict=True))
        + "</tr>"
        for row in frame.itertuples(index=False)
    )
    caption_html = f"<caption>{_e(caption)}</caption>" if caption else ""
    return f"<table>{caption_html}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _key_figures(figures: dict[str, str]) -> str:
    items = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in figures.items())
    return f'<dl class="figures">{items}</dl>'


def _note(text: str) -> str:
    return f'<p class="note">{text}</p>'


def _section(key: str, body: str) -> str:
    return f'<section id="{key}"><h2>{_e(SECTIONS[key])}</h2>{body}</section>'


def _scores(result: Result) -> pd.Series:
    return result.units["score"].astype(float).dropna()


# -- the numbers behind the plots ----------------------------------------------------------------


def weights_table(result: Result) -> pd.DataFrame:
    """The tree below the index, depth first: each node's weight as used, its share of its
    parent's weights and its overall share of the index (the product of shares on its path)."""
    rows: list[dict] = []

    def visit(node: Node, depth: int, overall: float) -> None:
        weights = result.weights.get(node.name) or {c.name: c.weight or 0.0 for c in node.children}
        total = sum(weights.values())
        for child in node.children:
            weight = float(weights.get(child.name, np.nan))
            share = weight / total if total else np.nan
            rows.append(
                {
                    "node": child.name,
                    "depth": depth,
                    "kind": "indicator" if isinstance(child, Indicator) else "domain",
                    "weight": weight,
                    "share_of_parent": share,
                    "share_of_index": overall * share,
                    "description": " ".join(child.description.split()),
                }
            )
            if isinstance(child, Node):
                visit(child, depth + 1, overall * share)

    visit(result.spec.index, 0, 1.0)
    return pd.DataFrame(rows)


def decile_shares(result: Result) -> pd.DataFrame:
    """Per group: the share of its ranked small areas in each decile (columns 1..10), the number
    of areas (`areas`) and their mean rank (`mean_rank`); most in need first (by share in decile
    1, then mean rank, then code). Empty when the index has no group."""
    group = result.spec.group
    if not group:
        return pd.DataFrame()
    units = result.units.dropna(subset=["decile"])
    deciles = units["decile"].astype(int)
    shares = pd.crosstab(units[group], deciles, normalize="index")
    shares = shares.reindex(columns=range(1, 11), fill_value=0.0)
    shares.columns = list(range(1, 11))
    shares["areas"] = units.groupby(group).size()
    shares["mean_rank"] = units.groupby(group)["rank"].mean().astype(float)
    shares.index.name = group
    return (
        shares.reset_index()
        .sort_values([1, "mean_rank", group], ascending=[False, True, True])
        .reset_index(drop=True)
    )


def _index_aggregation(result: Result) -> str:
    spec = result.spec
    return (spec.index.aggregate or spec.aggregate).method


def domain_contributions(result: Result) -> pd.DataFrame:
    """Per small area and domain: weight × domain score / sum of the index's weights (for a
    weighted sum, weight × domain score), so that for an additive aggregation the contributions
    add up to the score."""
    spec = result.spec
    weights = result.weights.get(spec.index.name) or {d.name: d.weight or 0.0 for d in spec.domains}
    divisor = 1.0 if _index_aggregation(result) == "weighted_sum" else sum(weights.values()) or 1.0
    return pd.DataFrame(
        {
            d.name: weights.get(d.name, 0.0)
            * result.units[f"{d.name}_score"].astype(float)
            / divisor
            for d in spec.domains
        },
        index=result.units.index,
    )


def rank_moves(result: Result, previous_units: pd.DataFrame) -> pd.DataFrame:
    """The small areas ranked in both releases, with `rank_previous`, `rank` and `move` (the
    previous rank minus the current: positive = moved towards rank 1, more in need)."""
    unit = result.spec.unit
    keep = [c for c in (unit, result.spec.group, "rank", "decile") if c]
    current = result.units[keep]
    earlier = previous_units[[c for c in (unit, "rank", "decile") if c in previous_units]]
    joined = current.merge(earlier, on=unit, how="inner", suffixes=("", "_previous"))
    joined = joined.dropna(subset=["rank", "rank_previous"])
    for column in ("rank", "rank_previous"):
        joined[column] = joined[column].astype(float)
    joined["move"] = joined["rank_previous"] - joined["rank"]
    return joined.sort_values(unit).reset_index(drop=True)


# -- sections ------------------------------------------------------------------------------------


def _header(result: Result, release: str) -> str:
    spec, units = result.spec, result.units
    scores = _scores(result)
    figures = {"Small areas": _n(len(units))}
    if spec.group:
        figures["Larger areas"] = _n(units[spec.group].nunique())
    if len(scores):
        figures["Median score"] = f"{scores.median():.1f}"
        figures["Score range"] = f"{scores.min():.1f} – {scores.max():.1f}"
    unscored = len(units) - len(scores)
    if unscored:
        figures["Not scored"] = _n(unscored)
    release_html = f'<p class="release">{_e(release)}</p>' if release else ""
    description = " ".join(spec.description.split())
    description_html = f"<p>{_e(description)}</p>" if description else ""
    unit_text = (
        f"<p>One row per <code>{_e(spec.unit)}</code>"
        + (f" within <code>{_e(spec.group)}</code>" if spec.group else "")
        + "; rank 1 and decile 1 are the most in need.</p>"
    )
    nav = "".join(f'<li><a href="#{k}">{_e(v)}</a></li>' for k, v in SECTIONS.items())

    tree = weights_table(result)
    shown = pd.DataFrame(
        {
            "Node": [
                "\u2003" * depth + name
                for depth, name in zip(tree["depth"], tree["node"], strict=True)
            ],
            "Kind": tree["kind"],
            "Weight": tree["weight"].map(lambda w: f"{w:.3g}"),
            "Share of parent": tree["share_of_parent"].map(lambda s: f"{s:.1%}"),
            "Share of index": tree["share_of_index"].map(lambda s: f"{s:.1%}"),
        }
    )
    if tree["description"].str.len().any():
        shown["Description"] = tree["description"]
    aggregation = _index_aggregation(result)
    weights = _table(
        shown,
        numeric={"Weight", "Share of parent", "Share of index"},
        caption=f"Weights of {spec.index.name} (aggregated by {aggregation})",
    )
    return (
        f"<header><h1>{_e(spec.title)}</h1>{release_html}{description_html}{unit_text}"
        f"{_key_figures(figures)}</header>"
        f'<nav aria-label="Sections"><ol>{nav}</ol></nav>{weights}'
    )


def period_table(result: Result) -> pd.DataFrame:
    """Per period: the areas scored, and the mean and median score."""
    units = result.units.assign(label=result.units[PERIOD].astype(str))
    scored = units.dropna(subset=["score"])
    by_period = scored.groupby("label", sort=False)["score"]
    return pd.DataFrame(
        {
            "Period": list(by_period.groups),
            "Areas scored": by_period.size().to_numpy(),
            "Mean score": by_period.mean().to_numpy(float),
            "Median score": by_period.median().to_numpy(float),
        }
    )


def _context(result: Result) -> str:
    """What a reader must know beside the plots: the periods and their scale, the warnings."""
    parts = []
    if result.periods:
        base = result.base["base_period"] if result.base else None
        scale = (
            f"Every period is on the scale of the base period {_e(base)}: scores compare across "
            "periods."
            if base
            else "Each period is normalised among its own areas: scores compare areas within a "
            "period, not across periods."
        )
        shown = period_table(result)
        for column in ("Mean score", "Median score"):
            shown[column] = shown[column].map(lambda v: f"{v:.1f}")
        shown["Areas scored"] = shown["Areas scored"].map(_n)
        parts.append(
            _note(
                f"{len(result.periods)} periods; the plots show the latest, "
                f"{_e(result.periods[-1])}. {scale}"
            )
            + _table(shown, {"Areas scored", "Mean score", "Median score"}, caption="Periods")
        )
    lines = [*result.warnings, *result.notes]
    if lines:
        items = "".join(f"<li>{_e(line)}</li>" for line in lines)
        parts.append(f'<div class="note"><p>What the run reports:</p><ul>{items}</ul></div>')
    return "".join(parts)


def _histogram(result: Result, width: float, height: float, legend: bool = True) -> Figure:
    """The score histogram, each bar stacked by decile."""
    units = result.units.dropna(subset=["score", "decile"])
    scores = units["score"].astype(float)
    bins = np.histogram_bin_edges(scores, bins=int(np.clip(np.sqrt(len(scores)), 10, 60)))
    fig = _figure(width, height)
    ax = fig.add_subplot()
    deciles = units["decile"].astype(int)
    ax.hist(
        [scores[deciles == d] for d in range(1, 11)],
        bins=bins,
        stacked=True,
        color=DECILE_COLOURS,
        label=[str(d) for d in range(1, 11)],
        edgecolor="white",
        linewidth=0.3,
    )
    median = scores.median()
    ax.axvline(median, color="#333", linewidth=1, linestyle="--")
    ax.annotate(
        f"median {median:.1f}",
        (median, 1),
        xycoords=("data", "axes fraction"),
        xytext=(4, -2),
        textcoords="offset points",
        va="top",
        fontsize=8,
    )
    ax.set_xlabel("score (higher = more in need)")
    ax.set_ylabel("small areas")
    ax.grid(axis="x", visible=False)
    if legend:
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(
            handles, labels, title="decile (1 = most in need)", ncols=2, fontsize=8,
            title_fontsize=8, loc="upper right",
        )  # fmt: skip
    return fig


def _distribution(result: Result) -> str:
    scores = _scores(result)
    if scores.empty:
        return _section("distribution", _note("No area has a score."))
    fig = _histogram(result, 9, 3.6)
    alt = (
        f"Histogram of the score of {_n(len(scores))} small areas, from {scores.min():.1f} to "
        f"{scores.max():.1f}, median {scores.median():.1f}; each bar is coloured by decile, "
        "decile 1 (red) holding the highest scores."
    )
    caption = (
        "Number of small areas by score. Colours show the deciles of rank: decile 1 (red) is the "
        "tenth of areas most in need, decile 10 (blue) the tenth least in need."
    )
    return _section("distribution", _img(fig, alt, caption))


def _groups(result: Result) -> str:
    group = result.spec.group
    if not group:
        return _section("groups", _note("This index has no larger area."))
    shares = decile_shares(result)
    total = len(shares)
    shown = shares.head(MAX_GROUPS)
    fig = _figure(9, 1.2 + 0.24 * len(shown))
    ax = fig.add_subplot()
    y = np.arange(len(shown))
    left = np.zeros(len(shown))
    for decile in range(1, 11):
        values = shown[decile].to_numpy(float)
        ax.barh(
            y, values, left=left, color=DECILE_COLOURS[decile - 1], label=str(decile), height=0.8,
            edgecolor="white", linewidth=0.3,
        )  # fmt: skip
        left += values
    ax.set_yticks(
        y, [f"{code}  ({n:,})" for code, n in zip(shown[group], shown["areas"], strict=True)]
    )
    ax.set_ylim(len(shown) - 0.5, -0.5)  # the first group on top, no margins
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.set_xlabel("share of the larger area's small areas")
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0)
    ax.legend(
        title="decile (1 = most in need)", ncols=10, loc="lower left", bbox_to_anchor=(0, 1.0),
        fontsize=8, title_fontsize=8, handlelength=1.2, columnspacing=0.8,
    )  # fmt: skip
    which = (
        f"the {len(shown)} of {total:,} larger areas ({_e(group)}) with the largest share of their "
        "small areas in decile 1"
        if total > MAX_GROUPS
        else f"all {total:,} larger areas ({_e(group)})"
    )
    top = shown.iloc[0]
    alt = (
        f"Stacked horizontal bars, one per larger area, showing the share of its small areas in "
        f"each decile, for {which}. {top[group]} has the largest share in decile 1: "
        f"{top[1]:.0%} of its {int(top['areas']):,} small areas."
    )
    caption = (
        f"Showing {which}, sorted by that share (then by mean rank). The number of small areas is "
        "in brackets."
    )
    intro = (
        f"<p>Showing the {len(shown)} most in need of {total:,} larger areas; "
        f"the other {total - len(shown):,} are left out.</p>"
        if total > MAX_GROUPS
        else ""
    )
    return _section("groups", intro + _img(fig, alt, caption))


def _contributions(result: Result) -> str:
    spec = result.spec
    units = result.units.dropna(subset=["decile"])
    if units.empty:
        return _section("contributions", _note("No area has a decile."))
    contributions = domain_contributions(result).loc[units.index]
    deciles = units["decile"].astype(int)
    by_decile = contributions.groupby(deciles).mean().reindex(range(1, 11))
    mean_score = units["score"].astype(float).groupby(deciles).mean().reindex(range(1, 11))
    names = list(by_decile.columns)
    palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]

    fig = _figure(9, 4.2)
    ax = fig.add_subplot()
    x = np.arange(1, 11)
    bottom = np.zeros(10)
    for number, name in enumerate(names):
        values = by_decile[name].fillna(0).to_numpy(float)
        ax.bar(
            x, values, bottom=bottom, color=palette(number % palette.N), label=name, width=0.75,
            edgecolor="white", linewidth=0.3,
        )  # fmt: skip
        bottom += values
    ax.plot(x, mean_score.to_numpy(float), "D", color="#222", markersize=4, label="mean score")
    ax.set_xticks(x, [str(d) for d in x])
    ax.set_xlabel("decile of the index (1 = most in need)")
    ax.set_ylabel("mean contribution to the score")
    ax.grid(axis="x", visible=False)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)

    aggregation = _index_aggregation(result)
    additive = aggregation in ("arithmetic", "weighted_sum")
    formula = "weight × domain score" + (
        "" if aggregation == "weighted_sum" else " ÷ sum of weights"
    )
    caption = (
        f"Each domain's contribution is {formula}, averaged over the small areas of each decile; "
        "the diamonds mark the mean score."
        + (
            ""
            if additive
            else f" The index is aggregated by {_e(aggregation)}, so the contributions are the "
            "weighted shares of the domain scores and need not add up to the score."
        )
    )
    top = by_decile.loc[1].sort_values(ascending=False)
    alt = (
        f"Stacked bars of the mean contribution of each of {len(names)} domains to the score, by "
        f"decile of the index. In decile 1 the largest contribution is from {top.index[0]} "
        f"({top.iloc[0]:.1f})."
    )
    weights = result.weights.get(spec.index.name, {})
    first, last = by_decile.loc[1], by_decile.loc[10]
    table = pd.DataFrame(
        {
            "Domain": names,
            "Weight": [f"{weights.get(n, np.nan):.3g}" for n in names],
            "Mean, decile 1": [f"{first[n]:.2f}" for n in names],
            "Mean, decile 10": [f"{last[n]:.2f}" for n in names],
            "Share of decile 1's score": [
                f"{first[n] / first.sum():.1%}" if first.sum() else "–" for n in names
            ],
        }
    )
    numeric = set(table.columns) - {"Domain"}
    return _section(
        "contributions",
        _img(fig, alt, caption)
        + _table(table, numeric, caption="Mean contribution in the first and last decile"),
    )


def _moves_table(moves: pd.DataFrame, result: Result, caption: str) -> str:
    spec = result.spec
    frame = pd.DataFrame({"Small area": moves[spec.unit]})
    if spec.group:
        frame["Larger area"] = moves[spec.group]
    frame["Rank before → now"] = [
        f"{_n(a)} → {_n(b)}" for a, b in zip(moves["rank_previous"], moves["rank"], strict=True)
    ]
    frame["Move"] = moves["move"].map(lambda m: f"{m:+,.0f}")
    if "decile_previous" in moves:
        frame["Decile"] = [
            f"{int(a)} → {int(b)}" if pd.notna(a) and pd.notna(b) else "–"
            for a, b in zip(moves["decile_previous"], moves["decile"], strict=True)
        ]
    return _table(frame, {"Rank before → now", "Move"}, caption=caption)


def _moves(result: Result, previous_units: pd.DataFrame | None) -> str:
    if previous_units is None:
        return _section("moves", _note("First release: there is no previous release to compare."))
    unit = result.spec.unit
    moves = rank_moves(result, previous_units)
    current, earlier = set(result.units[unit]), set(previous_units[unit])
    new, gone = len(current - earlier), len(earlier - current)
    if moves.empty:
        return _section("moves", _note("No small area is ranked in both releases."))
    up = moves[moves["move"] > 0].sort_values(["move", unit], ascending=[False, True])
    down = moves[moves["move"] < 0].sort_values(["move", unit], ascending=[True, True])
    up, down = up.head(MOVES_SHOWN), down.head(MOVES_SHOWN)

    figures = {
        "Ranked in both": _n(len(moves)),
        "Unchanged rank": _n((moves["move"] == 0).sum()),
        "Median move": _n(moves["move"].abs().median()),
        "Largest move": _n(moves["move"].abs().max()),
    }
    if "decile_previous" in moves:
        changed = (moves["decile"].astype(float) != moves["decile_previous"].astype(float)).sum()
        figures["Changed decile"] = f"{changed / len(moves):.1%}"
    if len(moves) > 2:
        correlation = moves[["rank", "rank_previous"]].rank().corr().iloc[0, 1]
        figures["Rank correlation"] = f"{correlation:.3f}"
    if new:
        figures["New areas"] = _n(new)
    if gone:
        figures["Areas gone"] = _n(gone)

    fig = _figure(6, 5.6)
    ax = fig.add_subplot()
    ax.scatter(
        moves["rank_previous"], moves["rank"], s=2 if len(moves) > 2000 else 8, color="#8c8c8c",
        alpha=0.35 if len(moves) > 2000 else 0.7, linewidths=0, label="small area",
    )  # fmt: skip
    for frame, colour, label in ((up, UP, "listed: towards rank 1"), (down, DOWN, "listed: away")):
        if len(frame):
            ax.scatter(frame["rank_previous"], frame["rank"], s=14, color=colour, label=label)
    top = max(moves["rank"].max(), moves["rank_previous"].max())
    ax.plot([1, top], [1, top], color="#333", linewidth=0.8, label="no change")
    ax.set_xlim(0, top * 1.02)
    ax.set_ylim(0, top * 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("previous rank (1 = most in need)")
    ax.set_ylabel("rank in this release")
    ax.xaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
    ax.yaxis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))
    ax.legend(loc="upper left", fontsize=8, markerscale=1.5)
    alt = (
        f"Scatter of the previous rank against the current rank of {_n(len(moves))} small areas; "
        f"points below the diagonal moved towards rank 1. The largest move is "
        f"{_n(moves['move'].abs().max())} places."
    )
    caption = (
        "Each point is a small area ranked in both releases; below the diagonal it moved towards "
        "rank 1 (more in need), above it away. The areas in the tables are coloured."
    )
    tables = (
        '<div class="tables">'
        + _moves_table(up, result, f"{len(up)} largest moves towards rank 1 (more in need)")
        + _moves_table(down, result, f"{len(down)} largest moves away from rank 1 (less in need)")
        + "</div>"
    )
    intro = (
        "<p>Compared with the previous release on the small areas ranked in both; a move is the "
        "previous rank minus the current, so + means more in need than before.</p>"
    )
    return _section("moves", intro + _key_figures(figures) + tables + _img(fig, alt, caption))


def _interval_widths(ax: Axes, frame: pd.DataFrame, width: pd.Series) -> None:
    """Every area's 90% interval width against its median rank, with a running median: how
    uncertain a rank is by where the area sits. `frame` is sorted by median rank."""
    n = len(frame)
    ax.scatter(
        frame["median_rank"], width, s=2 if n > 2000 else 6, color="#6baed6",
        alpha=0.3 if n > 2000 else 0.7, linewidths=0, label="small area",
    )  # fmt: skip
    window = max(15, n // 50)
    running = width.rolling(window, center=True, min_periods=1).median()
    ax.plot(frame["median_rank"], running, color="#08519c", linewidth=1.5, label="running median")
    ax.set_title(f"all {n:,} areas: width of the 90% interval")
    ax.set_xlim(0, n * 1.01)
    ax.set_ylim(0, None)
    ax.set_xlabel("median rank (1 = most in need)")
    ax.set_ylabel("interval width (ranks)")
    ax.legend(loc="upper left", fontsize=8, markerscale=2)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(ticker.StrMethodFormatter("{x:,.0f}"))


def _uncertainty(result: Result) -> str:
    if result.uncertainty is None or result.uncertainty.empty:
        return _section(
            "uncertainty",
            _note("No rank uncertainty was computed for this index (no Monte Carlo runs)."),
        )
    unit = result.spec.unit
    frame = result.uncertainty.merge(result.units[[unit, "rank"]], on=unit, how="left")
    frame = frame.dropna(subset=["median_rank", "rank_p05", "rank_p95"])
    frame = frame.sort_values(["median_rank", unit]).reset_index(drop=True)
    n = len(frame)
    width = frame["rank_p95"] - frame["rank_p05"]
    decile_low = np.ceil(10 * frame["rank_p05"].clip(lower=1) / n)
    decile_high = np.ceil(10 * frame["rank_p95"].clip(lower=1) / n)
    figures = {
        "Areas": _n(n),
        "Median 90% interval": f"{width.median():,.0f} ranks",
        "Widest 90% interval": f"{width.max():,.0f} ranks",
        "Interval within one decile": f"{(decile_low == decile_high).mean():.0%}",
    }
    many = n > MAX_INTERVALS
    shown = frame.head(MAX_INTERVALS)
    fig = _figure(9.5, 4.2)
    if many:
        overview, detail = fig.subplots(1, 2, width_ratios=[1, 1.5])
        _interval_widths(overview, frame, width)
    else:
        detail = fig.add_subplot()
    x = np.arange(1, len(shown) + 1)
    detail.vlines(
        x, shown["rank_p05"], shown["rank_p95"], color="#6baed6", linewidth=1.6,
        label="90% interval",
    )  # fmt: skip
    detail.plot(x, shown["median_rank"], "o", color="#08519c", markersize=2.5, label="median rank")
    if shown["rank"].notna().any():
        detail.plot(
            x, shown["rank"].astype(float), "_", color="#d94801", markersize=5,
            label="published rank",
        )  # fmt: skip
    detail.set_title(f"the {len(shown)} most in need" if many else f"all {n} areas")
    detail.set_xlim(0, len(shown) + 1)
    lowest = np.nanmax([shown["rank_p95"].max(), shown["rank"].astype(float).max()])
    detail.set_ylim(lowest * 1.05 + 1, 0)
    detail.set_xlabel("areas sorted by median rank")
    detail.set_ylabel("rank (1 = most in need)")
    detail.grid(axis="x", visible=False)
    detail.legend(loc="lower left", fontsize=8)

    which = f"the {len(shown)} areas most in need by median rank" if many else f"all {n} areas"
    alt = (
        f"Vertical 90% intervals of the rank over the Monte Carlo runs for {which}, sorted by "
        f"median rank; the median interval spans {width.median():,.0f} ranks."
        + (
            f" Beside it, the interval width of all {n:,} areas against their median rank."
            if many
            else ""
        )
    )
    caption = (
        "Each line is a small area's 90% interval of rank (5th to 95th percentile over the Monte "
        "Carlo runs, which perturb the weights and swap the normalisation and aggregation); the "
        "dot is its median rank and the dash its published rank."
        + (
            f" Left: the width of the interval of every area against its median rank, the line "
            f"a running median; the {len(shown)} areas on the right are the leftmost."
            if many
            else ""
        )
    )
    intro = "<p>How much each area's rank depends on the choices made in building the index."
    if many:
        intro += f" Showing {which} one by one (right); the left panel covers all {n:,}."
    intro += "</p>"
    return _section("uncertainty", intro + _key_figures(figures) + _img(fig, alt, caption))


# -- the public API ------------------------------------------------------------------------------


def render_report(
    result: Result, previous_units: pd.DataFrame | None = None, release: str = ""
) -> str:
    """One self-contained HTML page for a computed index: header and weights, score
    distribution, deciles by larger area, domain contributions, rank moves since the previous
    release (`previous_units`, the earlier release's units table; None for a first release) and
    rank uncertainty. `release` labels the page, e.g. "frailty_index_lsoa v000003". The same
    inputs give the same bytes."""
    title = result.spec.title + (f" — {release}" if release else "")
    shown = result.latest()
    with matplotlib.rc_context(STYLE):
        body = "".join(
            [
                _header(shown, release),
                _context(result),
                _distribution(shown),
                _groups(shown),
                _contributions(shown),
                _moves(shown, previous_units),
                _uncertainty(shown),
            ]
        )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def report_markdown(result: Result, previous_units: pd.DataFrame | None = None) -> str:
    """A short Markdown summary for Dagster's asset metadata: headline numbers and a small score
    histogram embedded as a data-URI PNG (well under 150 KB); with periods, of the latest."""
    everything, result = result, result.latest()
    spec, units = result.spec, result.units
    scores = _scores(result)
    lines = [f"**{spec.title}**", ""]
    areas = f"- **{len(units):,}** small areas (`{spec.unit}`)"
    if spec.group:
        areas += f" in **{units[spec.group].nunique():,}** larger areas (`{spec.group}`)"
    lines.append(areas)
    if len(scores):
        lines.append(
            f"- score: median **{scores.median():.1f}**, range {scores.min():.1f} – "
            f"{scores.max():.1f}"
        )
    if spec.group:
        shares = decile_shares(result)
        if len(shares):
            top = shares.iloc[0]
            lines.append(
                f"- most areas in decile 1: `{top[spec.group]}` ({top[1]:.0%} of "
                f"{int(top['areas']):,})"
            )
    if previous_units is None:
        lines.append("- first release")
    else:
        moves = rank_moves(result, previous_units)
        if len(moves):
            largest = moves.loc[
                moves["move"].abs().sort_values(ascending=False, kind="stable").index[0]
            ]
            lines.append(
                f"- since the previous release: median move {moves['move'].abs().median():,.0f} "
                f"ranks; largest `{largest[spec.unit]}` "
                f"{largest['rank_previous']:,.0f} → {largest['rank']:,.0f}"
            )
    if result.uncertainty is not None and len(result.uncertainty):
        width = (result.uncertainty["rank_p95"] - result.uncertainty["rank_p05"]).median()
        lines.append(f"- rank uncertainty: median 90% interval {width:,.0f} ranks")
    if everything.periods:
        base = everything.base["base_period"] if everything.base else None
        lines.insert(
            2,
            f"- periods: {', '.join(everything.periods)}; shown: {everything.periods[-1]}"
            + (f"; base period {base}" if base else ""),
        )
    lines += [f"- warning: {warning}" for warning in everything.warnings]
    if len(scores):
        with matplotlib.rc_context(STYLE):
            png = _png(_histogram(result, 5, 2.2, legend=False), dpi=80)
        lines += ["", f"![score distribution]({_data_uri(png)})"]
    return "\n".join(lines) + "\n"
