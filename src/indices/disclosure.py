"""Statistical disclosure control of published counts (frailty definitions, last section).

0 stays 0; 1 to 7 is suppressed (published as null, with a flag); 8 and above is rounded to the
nearest multiple of 5. Counts are integers, so x/5 never ends in exactly .5 and "nearest" needs no
tie rule; the integer form 5 * ((x + 2) // 5) keeps it exact, free of float rounding.
"""

from __future__ import annotations

SUPPRESS_BELOW = 8
ROUND_TO = 5

DISCLOSURE_MACROS = f"""
CREATE OR REPLACE TEMP MACRO sdc_count(x) AS
    CASE WHEN x IS NULL THEN NULL
         WHEN x < 0 OR x <> floor(x) THEN error('disclosure control needs a whole count, got '
                                                  || x::VARCHAR)
         WHEN x = 0 THEN 0
         WHEN x < {SUPPRESS_BELOW} THEN NULL
         ELSE CAST({ROUND_TO} * ((CAST(x AS BIGINT) + 2) // {ROUND_TO}) AS BIGINT) END;
CREATE OR REPLACE TEMP MACRO sdc_suppressed(x) AS coalesce(x BETWEEN 1 AND {SUPPRESS_BELOW - 1}, false);
"""


def protect(count: int) -> int | None:
    """Python twin of `sdc_count` for one count, used by audits and tests."""
    if count < 0 or int(count) != count:
        raise ValueError(f"disclosure control needs a whole count, got {count!r}")
    if count == 0:
        return 0
    if count < SUPPRESS_BELOW:
        return None
    return ROUND_TO * ((int(count) + 2) // ROUND_TO)


def is_publishable(value: int | None) -> bool:
    """True for a value that disclosure control could have produced: null, 0 or 10, 15, 20..."""
    return value is None or value == 0 or (value >= 10 and value % ROUND_TO == 0)
