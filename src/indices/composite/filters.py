"""Input filters: a spec's `where` is one boolean expression over its input's columns.

DuckDB's own parser reads the filter inside `SELECT * FROM <table> WHERE <filter>`; the parse must
be that one statement and nothing else (no second statement, ORDER BY, LIMIT, GROUP BY, UNION),
and every node of the expression must be on the allow-list below: column names, constants,
comparisons, AND / OR / NOT, IS [NOT] NULL, IN (a list), BETWEEN, CASE, casts and a few scalar
functions. So no subquery, table function (read_text, read_csv, glob ...), setting, variable or
parameter can run. The SQL the engine runs is DuckDB's rendering of the checked parse, not the
text as written, and it runs on a connection with external access off (`engine.lock_down`).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from indices.core.duck import ident

MAX_LENGTH = 1000  # characters
MAX_DEPTH = 50  # expression nesting, as DuckDB's parser counts it
# Scalar functions and operators a filter may call (DuckDB's names: `~~` is LIKE).
FUNCTIONS = frozenset(
    {
        "+", "-", "*", "/", "//", "%", "||", "~~", "!~~", "~~*", "!~~*",
        "abs", "round", "floor", "ceil", "lower", "upper", "trim", "length",
        "substring", "starts_with", "ends_with", "contains", "least", "greatest", "nullif",
    }
)  # fmt: skip
OPERATORS = frozenset(
    {
        "OPERATOR_NOT",
        "OPERATOR_IS_NULL",
        "OPERATOR_IS_NOT_NULL",
        "COMPARE_IN",
        "COMPARE_NOT_IN",
        "OPERATOR_COALESCE",
    }
)
CAST_TYPES = frozenset(
    {"BOOLEAN", "INTEGER", "BIGINT", "DOUBLE", "FLOAT", "DECIMAL", "VARCHAR", "DATE"}
)
_NAMES = {
    "SUBQUERY": "a subquery",
    "WINDOW": "a window function",
    "PARAMETER": "a parameter",
    "STAR": "a * or COLUMNS(...)",
    "LAMBDA": "a lambda",
}


class FilterRefused(ValueError):
    """A filter that is not one plain boolean expression over the input's columns."""


def _parse(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[str, dict]:
    text = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]
    parsed = json.loads(text)
    if parsed.get("error"):
        message = str(parsed.get("error_message", "")).strip().splitlines()[0]
        if parsed.get("error_type") == "parser":
            raise FilterRefused(f"does not parse: {message}")
        raise FilterRefused("is not one expression (it holds a statement or a ';')")
    if len(parsed["statements"]) != 1:
        raise FilterRefused("is not one expression (it holds a ';' and more statements)")
    return text, parsed["statements"][0]


def _without_locations(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_locations(v) for k, v in value.items() if not k.startswith("query_location")
        }
    if isinstance(value, list):
        return [_without_locations(v) for v in value]
    return value


def _check(expression: dict) -> None:
    """Every node of the expression on the allow-list, or FilterRefused naming the first not."""
    kind = expression.get("class")
    if kind == "CONSTANT":
        return
    if kind == "COLUMN_REF":
        if len(expression["column_names"]) != 1:
            name = ".".join(expression["column_names"])
            raise FilterRefused(f"names the column {name}: name a column by its name alone")
        return
    if kind == "COMPARISON":
        children = [expression["left"], expression["right"]]
    elif kind == "CONJUNCTION":
        children = expression["children"]
    elif kind == "BETWEEN":
        children = [expression["input"], expression["lower"], expression["upper"]]
    elif kind == "OPERATOR" and expression["type"] in OPERATORS:
        children = expression["children"]
    elif kind == "CASE":
        checks = expression["case_checks"]
        children = [c["when_expr"] for c in checks] + [c["then_expr"] for c in checks]
        children.append(expression["else_expr"])
    elif kind == "CAST":
        type_name = str(expression["type_expr"].get("type_name", "")).upper()
        if type_name not in CAST_TYPES:
            raise FilterRefused(
                f"casts to {type_name or 'a type'}; allowed: {', '.join(sorted(CAST_TYPES))}"
            )
        children = [expression["child"]]
    elif kind == "FUNCTION":
        name = expression["function_name"]
        qualified = expression.get("schema") or expression.get("catalog")
        if name.lower() not in FUNCTIONS or qualified:
            named = ", ".join(sorted(f for f in FUNCTIONS if f.isidentifier()))
            raise FilterRefused(
                f"calls {name}, which a filter may not (allowed: arithmetic, ||, LIKE, {named})"
            )
        if expression.get("filter") or expression.get("distinct"):
            raise FilterRefused(f"calls {name} as an aggregate")
        if (expression.get("order_bys") or {}).get("orders"):
            raise FilterRefused(f"calls {name} as an aggregate")
        children = [argument["expression"] for argument in expression["arguments"]]
    else:
        what = _NAMES.get(kind, f"a {str(kind).lower()} expression")
        if kind == "OPERATOR":
            what = f"the operator {str(expression.get('type')).lower()}"
        raise FilterRefused(f"holds {what}; a filter is one expression over the input's columns")
    for child in children:
        if child is not None:
            _check(child)


def render_filter(text: str, table: str) -> str:
    """`SELECT * FROM <table> WHERE <text>` as DuckDB renders its checked parse, or FilterRefused
    saying why the text is not one plain boolean expression."""
    if len(text) > MAX_LENGTH:
        raise FilterRefused(f"is longer than {MAX_LENGTH} characters")
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        con.execute(f"SET max_expression_depth = {MAX_DEPTH}")
        con.execute("SET lock_configuration = true")
        try:
            serialised, statement = _parse(con, f"SELECT * FROM {ident(table)} WHERE {text}")
        except FilterRefused as error:
            if "depth" in str(error):
                raise FilterRefused(f"is nested too deep (over {MAX_DEPTH} levels)") from None
            raise
        _, bare = _parse(con, f"SELECT * FROM {ident(table)}")
        bare["node"].pop("where_clause", None)
        where = statement["node"].pop("where_clause", None)
        statement.pop("named_param_map", None)  # a parameter is refused with the expression
        bare.pop("named_param_map", None)
        if _without_locations(statement) != _without_locations(bare) or where is None:
            raise FilterRefused(
                "is not one expression (it adds ORDER BY, LIMIT, GROUP BY, UNION or the like)"
            )
        try:
            _check(where)
        except (KeyError, TypeError, AttributeError):
            # A parse this module does not know how to read is refused, never run.
            raise FilterRefused("cannot be checked (an unexpected expression)") from None
        return con.execute("SELECT json_deserialize_sql(?::JSON)", [serialised]).fetchone()[0]
    finally:
        con.close()
