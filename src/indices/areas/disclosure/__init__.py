"""Statistical disclosure control of published counts (frailty definitions, last section), chosen
per deployment by `INDICES_DISCLOSURE`:

- `rounding` (the default): 0 stays 0; 1 to 7 is suppressed (published as null, with a flag); 8
  and above is rounded to the nearest multiple of 5. Counts are integers, so x/5 never ends in
  exactly .5 and "nearest" needs no tie rule; the integer form 5 * ((x + 2) // 5) keeps it exact,
  free of float rounding. A release audit (`indices.areas.disclosure.audit`) then suppresses further
  where the tables together would pin a suppressed count to one value.
- `cell_key`: the ONS cell-key method (`indices.areas.disclosure.cell_key`): every count gets a
  small, consistent noise from a perturbation table, looked up by the count and its cell key.
"""

from __future__ import annotations

import os

SUPPRESS_BELOW = 8
ROUND_TO = 5
METHOD_ENV = "INDICES_DISCLOSURE"
ROUNDING = "rounding"
CELL_KEY = "cell_key"
METHODS = (ROUNDING, CELL_KEY)

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


def method_from_env() -> str:
    """The deployment's method: `INDICES_DISCLOSURE`, `rounding` when unset."""
    method = os.environ.get(METHOD_ENV) or ROUNDING
    if method not in METHODS:
        raise ValueError(f"{METHOD_ENV} must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def parameters(method: str) -> dict:
    """The parameters of a method, as each release's manifest records them."""
    if method == ROUNDING:
        return {
            "zero": "published as 0",
            "suppressed": f"1 to {SUPPRESS_BELOW - 1}",
            "round_to": ROUND_TO,
        }
    if method == CELL_KEY:
        from indices.areas.disclosure.cell_key import ptable

        return ptable().parameters()
    raise ValueError(f"disclosure method must be one of {', '.join(METHODS)}, got {method!r}")


def protect(count: int) -> int | None:
    """Python twin of `sdc_count` for one count, used by audits and tests."""
    if count < 0 or int(count) != count:
        raise ValueError(f"disclosure control needs a whole count, got {count!r}")
    if count == 0:
        return 0
    if count < SUPPRESS_BELOW:
        return None
    return ROUND_TO * ((int(count) + 2) // ROUND_TO)


def is_publishable(value: int | None, method: str = ROUNDING) -> bool:
    """True for a value the method could have produced: under rounding null, 0 or 10, 15, 20...;
    under the cell-key method null (withheld), 0 or a whole count above its small-count
    threshold."""
    if value is None:
        return True
    if method == ROUNDING:
        return value == 0 or (value >= 10 and value % ROUND_TO == 0)
    if method == CELL_KEY:
        from indices.areas.disclosure.cell_key import ptable

        return int(value) == value and (value == 0 or value > ptable().js)
    raise ValueError(f"disclosure method must be one of {', '.join(METHODS)}, got {method!r}")
