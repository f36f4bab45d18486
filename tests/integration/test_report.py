"""The index report: one self-contained, well-formed, deterministic HTML page with every section,
and a small Markdown summary, for the IMD 2019 (32,844 LSOAs) and a small index with rank
uncertainty and a previous release."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from indices.composite.engine import Result, compute, load_inputs
from indices.composite.report import (
    MAX_GROUPS,
    MAX_INTERVALS,
    SECTIONS,
    decile_shares,
    domain_contributions,
    rank_moves,
    render_report,
    report_markdown,
)
from indices.composite.spec import load_spec, parse_spec
from indices.core.reference import reference_dir

DATA_URI = re.compile(r"data:image/png;base64,([A-Za-z0-9+/=]+)")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


class TagChecker(HTMLParser):
    """Records every unclosed or mismatched tag and the images' attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.problems: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.headings: list[str] = []
        self._heading: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
        if tag in {"h1", "h2"}:
            self._heading = ""
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in {"h1", "h2"} and self._heading is not None:
            self.headings.append(self._heading)
            self._heading = None
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
            return
        self.open.pop()

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading += data


def parsed(page: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(page)
    checker.close()
    return checker


def pngs(text: str) -> list[bytes]:
    return [base64.b64decode(b64) for b64 in DATA_URI.findall(text)]


def small_index(runs: int = 50, group: bool = True) -> Result:
    """A toy index of 240 units in 12 groups, two domains, with rank uncertainty."""
    spec = {
        "name": "toy_index",
        "title": "Toy index <for tests>",
        "description": "A small index & its uncertainty.",
        "unit": "lsoa11_code",
        "inputs": [{"path": "unused.csv"}],
        "normalise": {"method": "minmax"},
        "index": {
            "name": "toy",
            "children": [
                {
                    "name": "clinical",
                    "weight": 0.6,
                    "weights": "equal",
                    "children": [
                        {"name": "efi", "column": "a", "description": "share frail"},
                        {"name": "hfrs", "column": "b"},
                    ],
                },
                {
                    "name": "care",
                    "weight": 0.4,
                    "children": [{"name": "lts", "column": "c", "weight": 1}],
                },
            ],
        },
        "uncertainty": {
            "runs": runs,
            "seed": 1,
            "normalise": ["minmax", "zscore"],
            "aggregate": ["arithmetic", "geometric"],
        },
    }
    if group:
        spec |= {"group": "lad19_code", "summaries": {"population": "pop"}}
    rng = np.random.default_rng(7)
    n = 240
    data = pd.DataFrame(
        {
            "lsoa11_code": [f"E01{i:06d}" for i in range(n)],
            "lad19_code": [f"E06{i % 12:06d}" for i in range(n)],
            "a": rng.gamma(2, 1, n),
            "b": rng.normal(0, 1, n),
            "c": rng.uniform(0, 1, n),
            "pop": rng.integers(1000, 2000, n),
        }
    ).set_index("lsoa11_code")
    return compute(parse_spec(spec), data)


def previous_release(result: Result) -> pd.DataFrame:
    """The units as an earlier release might have had them: ranks shuffled a little, the first
    and last swapped (the largest moves), one unit gone and one that no longer exists."""
    previous = result.units.copy()
    rng = np.random.default_rng(3)
    noisy = previous["score"] + rng.normal(0, previous["score"].std() / 10, len(previous))
    rank = noisy.rank(ascending=False, method="first").astype(int)
    first, last = rank.idxmin(), rank.idxmax()
    rank[first], rank[last] = rank[last], rank[first]
    previous["rank"] = rank.astype("Int64")
    previous["decile"] = np.ceil(10 * rank / len(rank)).astype("Int64")
    previous = previous.iloc[1:]
    extra = previous.iloc[:1].assign(lsoa11_code="E01999999")
    return pd.concat([previous, extra], ignore_index=True)


@pytest.fixture(scope="module")
def imd() -> Result:
    spec = load_spec(reference_dir() / "indices" / "imd2019.yaml")
    return compute(spec, load_inputs(spec))


@pytest.fixture(scope="module")
def imd_page(imd) -> str:
    return render_report(imd, release="imd2019_lsoa v000001")


@pytest.fixture(scope="module")
def small() -> Result:
    return small_index()


@pytest.fixture(scope="module")
def small_previous(small) -> pd.DataFrame:
    return previous_release(small)


@pytest.fixture(scope="module")
def small_page(small, small_previous) -> str:
    return render_report(small, small_previous, release="toy_index_lsoa v000003")


def assert_self_contained(page: str) -> None:
    outside = DATA_URI.sub("data:", page)
    assert "http" not in outside.lower()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:|#)""", outside)
    assert "<script" not in outside
    assert "<link" not in outside


def assert_well_formed(page: str) -> TagChecker:
    checker = parsed(page)
    assert not checker.problems, checker.problems[:5]
    assert not checker.open, f"unclosed: {checker.open}"
    for image in checker.images:
        assert image.get("alt"), "every image needs alt text"
        assert (image.get("src") or "").startswith("data:image/png;base64,")
    return checker


def test_imd_report(imd, imd_page):
    page = imd_page
    checker = assert_well_formed(page)
    assert_self_contained(page)
    assert checker.headings[0] == imd.spec.title
    assert checker.headings[1:] == list(SECTIONS.values())
    assert "imd2019_lsoa v000001" in page
    assert "32,844" in page
    # histogram, deciles by group and contributions; no moves or uncertainty plots
    assert len(checker.images) == 3
    assert "First release" in page
    assert "No rank uncertainty was computed" in page
    assert f"Showing the {MAX_GROUPS} most in need of 317 larger areas" in page
    # every domain and its weight are in the weights table
    for domain, weight in imd.weights["imd"].items():
        assert f"<td>{domain}</td>" in page.replace("\u2003", "")
        assert f">{weight:.3g}<" in page
    assert len(page.encode()) < 2_000_000
    for png in pngs(page):
        assert png.startswith(b"\x89PNG") and b"Software" not in png


def test_small_report(small, small_previous, small_page):
    page = small_page
    checker = assert_well_formed(page)
    assert_self_contained(page)
    assert checker.headings[1:] == list(SECTIONS.values())
    # histogram, deciles by group, contributions, moves scatter, uncertainty intervals
    assert len(checker.images) == 5
    assert "Toy index &lt;for tests&gt;" in page and "<for tests>" not in page
    assert "First release" not in page
    moves = rank_moves(small, small_previous)
    assert len(moves) == len(small.units) - 1
    largest = moves.loc[moves["move"].abs().idxmax()]
    assert abs(largest["move"]) == len(small.units) - 1
    moves_section = page[page.index('id="moves"') : page.index('id="uncertainty"')]
    assert f"<td>{largest['lsoa11_code']}</td>" in moves_section
    assert "New areas" in moves_section and "Areas gone" in moves_section
    assert f"Showing the {MAX_INTERVALS} areas most in need by median rank one by one" in page
    assert len(page.encode()) < 500_000


def test_deterministic(imd, imd_page, small, small_previous, small_page):
    assert render_report(imd, release="imd2019_lsoa v000001") == imd_page
    assert render_report(small, small_previous, release="toy_index_lsoa v000003") == small_page
    assert report_markdown(small, small_previous) == report_markdown(small, small_previous)


def test_without_group_or_uncertainty():
    result = small_index(runs=0, group=False)
    page = render_report(result)
    checker = assert_well_formed(page)
    assert_self_contained(page)
    assert len(checker.images) == 2  # histogram and contributions
    assert "This index has no larger area." in page
    assert "No rank uncertainty was computed" in page
    assert decile_shares(result).empty


def test_few_areas_show_every_interval(small):
    result = replace(small, units=small.units.head(40), uncertainty=small.uncertainty.head(40))
    page = render_report(result)
    assert_well_formed(page)
    assert "all 40 areas" in page


def test_decile_shares_and_contributions(imd):
    shares = decile_shares(imd)
    assert len(shares) == 317
    assert np.allclose(shares[list(range(1, 11))].sum(axis=1), 1)
    assert shares[1].is_monotonic_decreasing
    assert shares["areas"].sum() == 32844
    # a weighted sum: the contributions add up to the score
    contributions = domain_contributions(imd)
    assert np.allclose(contributions.sum(axis=1), imd.units["score"])


def test_markdown(imd, small, small_previous):
    text = report_markdown(imd)
    assert "32,844" in text and "first release" in text
    images = pngs(text)
    assert len(images) == 1 and text.count("![score distribution](data:image/png;base64,") == 1
    assert len(text.encode()) < 150_000
    text = report_markdown(small, small_previous)
    moves = rank_moves(small, small_previous)
    assert moves.loc[moves["move"].abs().idxmax(), "lsoa11_code"] in text
    assert "rank uncertainty" in text
