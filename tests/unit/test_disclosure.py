"""Disclosure control of published counts, on its edges, in SQL and in its Python twin."""

from __future__ import annotations

import duckdb
import pytest

from indices.areas.disclosure import DISCLOSURE_MACROS, is_publishable, protect

EDGES = {
    0: 0,
    1: None,
    2: None,
    7: None,
    8: 10,
    9: 10,
    12: 10,
    13: 15,
    17: 15,
    18: 20,
    22: 20,
    23: 25,
    1002: 1000,
    1003: 1005,
}


@pytest.fixture()
def con():
    connection = duckdb.connect()
    connection.execute(DISCLOSURE_MACROS)
    yield connection
    connection.close()


@pytest.mark.parametrize(("count", "published"), sorted(EDGES.items()))
def test_edges_in_sql(con, count, published):
    value, suppressed = con.execute(
        "SELECT sdc_count(?), sdc_suppressed(?)", [count, count]
    ).fetchone()
    assert value == published
    assert suppressed == (1 <= count <= 7)


def test_sql_and_python_agree_on_every_count_to_2000(con):
    rows = con.execute("SELECT x, sdc_count(x) FROM range(0, 2001) t(x)").fetchall()
    assert all(protect(x) == value for x, value in rows)
    assert all(is_publishable(value) for _, value in rows)


def test_halves_round_away_from_the_nearest_even(con):
    # x/5 is never exactly .5 for a whole count, but the rule must not lean on float rounding:
    # Python's round(2.5) == 2 would publish 12.5-style halves down; ours goes by whole counts.
    for count in (12, 13, 37, 38):
        assert protect(count) == 5 * int(count / 5 + 0.5)


@pytest.mark.parametrize("bad", [2.5, -1, 7.5])
def test_only_whole_counts_are_accepted(con, bad):
    with pytest.raises(ValueError):
        protect(bad)
    with pytest.raises(duckdb.Error, match="whole count"):
        con.execute("SELECT sdc_count(?::DOUBLE)", [bad]).fetchone()


def test_null_stays_null(con):
    assert con.execute("SELECT sdc_count(NULL::INTEGER)").fetchone()[0] is None
    assert protect(0) == 0 and is_publishable(None) and not is_publishable(5)
