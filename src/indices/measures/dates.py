"""Calendar rules of the definitions: look-back windows that respect 29 February."""

from __future__ import annotations

from datetime import date


def years_before(day: date, years: int) -> date:
    """The same day and month `years` earlier; 28 February when `day` is 29 February."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year that has none
        return day.replace(year=day.year - years, day=28)


def age_sql(birth: str, reference: str) -> str:
    """DuckDB SQL for age in completed years at `reference`: someone born on 29 February
    reaches each age on 1 March in other years, since (2, 28) comes before (2, 29)."""
    return (
        f"(year({reference}) - year({birth}) - CASE WHEN month({reference}) * 100 + "
        f"day({reference}) < month({birth}) * 100 + day({birth}) THEN 1 ELSE 0 END)"
    )
