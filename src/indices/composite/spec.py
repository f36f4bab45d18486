"""Index specs: a YAML file declares a tree (indicators → domains → index), each node with its
weight and methods. Loading validates it; a wrong spec is a one-line-per-problem error naming the
field and the allowed values.

A spec is data, not code: it is read with a YAML loader that refuses anchors and aliases and deep
nesting, within the size limits below; each `where` must be one plain boolean expression
(`indices.composite.filters`); and an input may only be a file beside the spec, a `reference:`
file, a `published:` dataset or one of the warehouse's area-level aggregate tables
(`WAREHOUSE_INPUTS`)."""

from __future__ import annotations

import inspect
import math
import re
from datetime import date, datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from indices.composite import methods
from indices.composite.filters import FilterRefused, render_filter
from indices.core import warehouse

MAX_SPEC_BYTES = 1 << 20  # 1 MiB
MAX_YAML_DEPTH = 100  # nested mappings and lists
MAX_TREE_DEPTH = 20  # levels of the index tree, the index and its leaves included
MAX_TREE_NODES = 1000  # nodes and indicators
MAX_INPUTS = 20
MAX_RUNS = 10_000  # uncertainty runs
MAX_RUN_DRAWS = 10_000_000  # uncertainty runs × units: the ranks drawn and held in memory
# Of the private warehouse a spec may read only these area-level aggregates (the frailty index
# reads the exact counts on purpose: the index is published, the counts behind it are not).
WAREHOUSE_INPUTS = frozenset(warehouse.READABLE_BY_SPECS)
INPUT_KINDS = ("reference", "published", "warehouse")
DATASET_NAME = re.compile(r"[a-z][a-z0-9_]*")


class SpecError(ValueError):
    """A spec that cannot be used; the message lists every problem with the field's path."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check(name: str, registry: dict[str, Any], kind: str) -> str:
    if name not in registry:
        raise ValueError(f"unknown {kind} method {name!r}; allowed: {', '.join(sorted(registry))}")
    return name


# Parameters the engine passes itself, never from a spec.
_INTERNAL_PARAMS = frozenset({"values", "fitted", "data", "groups", "weights"})


def _accepted_params(function: Any) -> dict[str, inspect.Parameter] | None:
    """The parameters a spec may give a method, or None when it passes any on (e.g. to
    scikit-learn) and so cannot be checked before it runs."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name: p for p in parameters if p.name not in _INTERNAL_PARAMS}


def _kind_problem(name: str, value: Any, default: Any) -> str | None:
    """A parameter whose default is a number, text or true/false must be one too."""
    if default is inspect.Parameter.empty or default is None:
        return None
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int | float):
        ok, kind = isinstance(value, int | float) and not isinstance(value, bool), "a number"
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "text"
    else:
        return None
    return None if ok else f"{name}: {kind}, not {value!r}"


class Step(Strict):
    """A named method and its parameters, e.g. {method: minmax, low: 0, high: 100}. Each kind
    of step checks its method against its registry in `indices.composite.methods`, and the
    parameters against the method's."""

    model_config = ConfigDict(extra="allow")
    method: str
    registry: ClassVar[dict[str, Any]]
    kind: ClassVar[str]

    @field_validator("method")
    @classmethod
    def known(cls, value: str) -> str:
        return _check(value, cls.registry, cls.kind)

    @model_validator(mode="after")
    def known_params(self) -> Step:
        accepted = _accepted_params(self.registry[self.method])
        if accepted is not None:
            unknown = [name for name in self.params if name not in accepted]
            if unknown:
                takes = f"it takes: {', '.join(accepted)}" if accepted else "it takes none"
                raise ValueError(f"{self.method} takes no parameter {unknown[0]!r} ({takes})")
            needed = [
                name
                for name, p in accepted.items()
                if p.default is inspect.Parameter.empty and name not in self.params
            ]
            if needed:
                raise ValueError(f"{self.method} needs {' and '.join(needed)}")
            for name, value in self.params.items():
                problem = _kind_problem(name, value, accepted[name].default)
                if problem:
                    raise ValueError(problem)
        ties = self.params.get("ties")
        if ties is not None and ties not in methods.TIE_RULES:
            raise ValueError(
                f"ties: unknown tie rule {ties!r}; allowed: {', '.join(methods.TIE_RULES)}"
            )
        for name, value in self.params.items():
            if isinstance(value, dict | list):
                raise ValueError(f"{name}: a parameter is a number, text or true/false")
        return self

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Impute(Step):
    method: str = "none"
    registry, kind = methods.IMPUTERS, "imputation"


class Treat(Step):
    method: str = "none"
    registry, kind = methods.TREATMENTS, "treatment"


class _Scaling(Step):
    """A normalisation or rescaling: `base: true` fixes the parameters it takes from the data
    (min and max, mean and sd) to the base period (`periods.base`); `weights` names a column
    (e.g. a population) weighting the mean and standard deviation of `zscore`."""

    base: bool = False
    weights: str | None = None

    @model_validator(mode="after")
    def fixable(self) -> _Scaling:
        if self.base and self.method not in methods.FITTERS:
            can = ", ".join(m for m in methods.FITTERS if m in self.registry)
            raise ValueError(
                f"base: {self.method} cannot be fixed to a base period (it ranks the units "
                f"of each period among themselves); these can: {can}"
            )
        if self.weights is not None and self.method not in methods.WEIGHTED:
            raise ValueError(
                f"weights: only {', '.join(sorted(methods.WEIGHTED))} takes weights, "
                f"not {self.method}"
            )
        return self


class Normalise(_Scaling):
    method: str = "minmax"
    registry, kind = methods.NORMALISERS, "normalisation"


class Rescale(_Scaling):
    """A linear rescaling after any normalisation, e.g. {method: zscore, mean: 100, sd: 10,
    base: true}: 100 + 10 z, z relative to the base period."""

    registry, kind = methods.RESCALERS, "rescaling"


class Aggregate(Step):
    method: str = "arithmetic"
    registry, kind = methods.AGGREGATORS, "aggregation"


def input_location(path: str) -> tuple[str, str]:
    """Where an input lives: `(kind, rest)`, kind `spec` (a file in the spec's folder),
    `reference`, `warehouse` (rest a relative path) or `published` (rest a dataset name).
    A ValueError names an input a spec may not read."""
    kind, colon, rest = path.partition(":")
    if not colon:
        kind, rest = "spec", path
    elif kind not in INPUT_KINDS:
        raise ValueError(
            f"{path}: unknown kind of input {kind + ':'!r}; an input is a file beside the spec, "
            "reference:<file>, published:<dataset> or warehouse:<aggregate table>"
        )
    if kind == "published":
        if not DATASET_NAME.fullmatch(rest):
            raise ValueError(f"{path}: not a dataset name (lower snake case)")
        return kind, rest
    relative = PurePosixPath(rest)
    if not rest or relative.is_absolute():
        raise ValueError(
            f"{path}: {'absolute' if rest else 'empty'}; give a path within the folder"
        )
    if ".." in relative.parts:
        raise ValueError(f"{path}: goes up a folder (..); give a path within the folder")
    if kind == "warehouse" and relative.as_posix() not in WAREHOUSE_INPUTS:
        raise ValueError(
            f"{path} is private: of the warehouse a spec may read only the area-level "
            f"aggregates {', '.join(sorted(WAREHOUSE_INPUTS))}"
        )
    return kind, relative.as_posix()


class Input(Strict):
    """A table the index reads: a CSV or Parquet file in the spec's folder (a relative path),
    `reference:<file>` (reference data), `published:<dataset>` (the latest release of a published
    dataset) or `warehouse:<file>` (only the area-level aggregates in `WAREHOUSE_INPUTS`). Tables
    after the first are joined to it on the unit key."""

    path: str
    where: str | None = None  # one boolean expression over the columns, e.g. "level = 'lsoa'"
    rename: dict[str, str] = Field(default_factory=dict)
    columns: list[str] | None = None

    @field_validator("path")
    @classmethod
    def readable(cls, value: str) -> str:
        input_location(value)
        return value

    @model_validator(mode="after")
    def plain_filter(self) -> Input:
        if self.where is not None:
            try:
                render_filter(self.where, "input")
            except FilterRefused as error:
                raise ValueError(f"input {self.path}: where {error}") from None
        return self


class Indicator(Strict):
    """A leaf: a column, or a rate from numerator and denominator columns (each summed)."""

    name: str
    column: str | None = None
    numerator: list[str] | None = None
    denominator: list[str] | None = None
    direction: Literal["higher_is_worse", "higher_is_better"] = "higher_is_worse"
    weight: float | None = Field(default=None, ge=0)
    shrink: Literal["none", "ebayes"] = "none"
    transform: Literal["none", "sqrt", "cbrt", "square", "cube", "reciprocal", "log", "log1p"] = (
        "none"
    )
    treat: Treat | None = None
    normalise: Normalise | None = None
    rescale: Rescale | None = None
    description: str = ""

    @model_validator(mode="after")
    def one_source(self) -> Indicator:
        rate = self.numerator is not None or self.denominator is not None
        if (self.column is None) == (not rate):
            raise ValueError("give either column, or numerator and denominator")
        if rate and not (self.numerator and self.denominator):
            raise ValueError("a rate needs both numerator and denominator")
        if self.shrink != "none" and not rate:
            raise ValueError("shrink applies to rates (numerator and denominator) only")
        return self

    @property
    def sign(self) -> int:
        return 1 if self.direction == "higher_is_worse" else -1


def _kind(value: Any) -> str:
    """A child with children is a node, anything else an indicator."""
    children = (
        value.get("children") if isinstance(value, dict) else getattr(value, "children", None)
    )
    return "node" if children is not None else "indicator"


class Node(Strict):
    """A domain or the index: a weighted aggregate of its children. Weights are explicit when
    every child has one, equal when none has, or derived from the data (pca, factor)."""

    name: str
    weight: float | None = Field(default=None, ge=0)
    weights: Literal["explicit", "equal", "pca", "factor"] | None = None
    aggregate: Aggregate | None = None
    normalise: Normalise | None = None  # of the node's score, after aggregating its children
    rescale: Rescale | None = None  # linear, after normalise
    children: list[
        Annotated[
            Annotated[Node, Tag("node")] | Annotated[Indicator, Tag("indicator")],
            Discriminator(_kind),
        ]
    ]
    description: str = ""

    @model_validator(mode="after")
    def weighted_children(self) -> Node:
        if not self.children:
            raise ValueError(f"node {self.name!r} has no children")
        missing = [c.name for c in self.children if c.weight is None]
        if self.weights is None:
            self.weights = "equal" if len(missing) == len(self.children) else "explicit"
        if self.weights == "explicit" and missing:
            raise ValueError(
                f"node {self.name!r} gives weights to some children but not to "
                f"{', '.join(missing)} (give all, none for equal weights, or set weights: "
                "equal, pca or factor)"
            )
        if self.weights == "explicit" and not any(c.weight for c in self.children):
            raise ValueError(
                f"every weight of {self.name!r} is 0: its score cannot be computed (give at "
                "least one child a positive weight)"
            )
        return self


class Summaries(Strict):
    """Summaries of the small areas per larger area, as the IoD publish for authorities,
    weighted by `population` (each small area counts once without it)."""

    population: str | None = None
    most_deprived_share: float = Field(default=0.10, gt=0, le=1)


RESERVED_COLUMNS = frozenset({"score", "rank", "decile", "quintile", "period"})


class Ranks(Strict):
    """How the published ranks break ties and how ranks become deciles, quintiles and any other
    n-tiles (`groups`: extra columns, e.g. {vigintile: 20})."""

    ties: Literal["min", "average", "max", "first"] = "min"
    quantiles: Literal["ceil", "equal_count"] = "ceil"
    groups: dict[str, int] = Field(default_factory=dict)

    @field_validator("groups")
    @classmethod
    def named_groups(cls, value: dict[str, int]) -> dict[str, int]:
        for name, n in value.items():
            if not DATASET_NAME.fullmatch(name) or name in RESERVED_COLUMNS:
                raise ValueError(
                    f"{name!r} cannot name a column of n-tiles (lower snake case, not "
                    f"{', '.join(sorted(RESERVED_COLUMNS))})"
                )
            if name.endswith(("_score", "_rank")):
                raise ValueError(f"{name!r} ends like a domain's columns (_score, _rank)")
            if not 2 <= n <= 1000:
                raise ValueError(f"{name}: between 2 and 1000 groups, not {n}")
        return value

    def ntiles(self) -> dict[str, int]:
        """Every n-tile column: decile and quintile, then the spec's own groups."""
        return {"decile": 10, "quintile": 5, **self.groups}


def period_label(value: Any) -> str:
    """A period as text, the same whichever way it was read: a date (or a timestamp at
    midnight) as YYYY-MM-DD, a whole number without a decimal point, anything else as it is."""
    if isinstance(value, datetime):
        if value.hour == value.minute == value.second == value.microsecond == 0:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item"):  # a numpy scalar
        return period_label(value.item())
    return str(value)


class Periods(Strict):
    """The period dimension: the inputs' `column` says which period a row belongs to and every
    period is built. Steps with `base: true` take their parameters from the `base` period, so
    that later periods are on its scale; `parameters` names a JSON file (beside the spec, or
    `reference:<file>`) holding the base period's parameters as a run that had the base period
    wrote them, for runs whose inputs no longer hold it (a nightly release)."""

    column: str
    base: str | None = None
    parameters: str | None = None

    @field_validator("base", mode="before")
    @classmethod
    def base_as_text(cls, value: Any) -> Any:
        return None if value is None else period_label(value)

    @field_validator("parameters")
    @classmethod
    def readable(cls, value: str | None) -> str | None:
        if value is not None:
            kind, _ = input_location(value)
            if kind not in ("spec", "reference"):
                raise ValueError(f"{value}: a file beside the spec or reference:<file>")
        return value

    @model_validator(mode="after")
    def parameters_need_a_base(self) -> Periods:
        if self.parameters and not self.base:
            raise ValueError("parameters are a base period's: give base too")
        return self


class Uncertainty(Strict):
    """Monte Carlo sensitivity analysis: weights perturbed and methods drawn per run."""

    # Strict: `runs: 1.0e+8` is an error, not a hundred million runs.
    runs: int = Field(default=0, ge=0, le=MAX_RUNS, strict=True)
    seed: int = Field(default=0, strict=True)
    weight_noise: float = Field(default=0.25, ge=0, lt=1)
    normalise: list[str] = Field(default_factory=list)
    aggregate: list[str] = Field(default_factory=list)

    @field_validator("normalise")
    @classmethod
    def known_normalisers(cls, value: list[str]) -> list[str]:
        for name in value:
            _check(name, methods.NORMALISERS, "normalisation")
            accepted = _accepted_params(methods.NORMALISERS[name]) or {}
            needed = [n for n, p in accepted.items() if p.default is inspect.Parameter.empty]
            if needed:
                raise ValueError(
                    f"{name} needs {' and '.join(needed)}, which a run's draw cannot give"
                )
        return value

    @field_validator("aggregate")
    @classmethod
    def known_aggregators(cls, value: list[str]) -> list[str]:
        return [_check(v, methods.AGGREGATORS, "aggregation") for v in value]


class IndexSpec(Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    description: str = ""
    unit: str  # the small-area key column, e.g. lsoa11_code
    group: str | None = None  # the larger area, e.g. lad19_code
    inputs: list[Input] = Field(min_length=1)
    impute: Impute = Field(default_factory=Impute)
    treat: Treat = Field(default_factory=Treat)
    normalise: Normalise = Field(default_factory=Normalise)
    aggregate: Aggregate = Field(default_factory=Aggregate)
    # What happens to a value still missing when a node is aggregated: `exclude` the unit (no
    # score, rank or decile), `reweight` over the available children, or `impute` (the impute
    # step fills it; a value it cannot fill excludes the unit). Unstated: the aggregation's own
    # rule (weighted_sum excludes, the means re-weight), reported as a warning when it acts.
    missing: Literal["exclude", "reweight", "impute"] | None = None
    index: Node
    ranks: Ranks = Field(default_factory=Ranks)
    periods: Periods | None = None
    summaries: Summaries | None = None
    uncertainty: Uncertainty = Field(default_factory=Uncertainty)
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def unique_names(self) -> IndexSpec:
        names = [n.name for n in walk(self.index)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"node and indicator names must be unique: {', '.join(duplicates)}")
        if self.summaries and not self.group:
            raise ValueError("summaries need a group (the larger area)")
        taken = {
            self.unit,
            self.group,
            *(f"{d.name}_{s}" for d in self.domains for s in ("score", "rank")),
        }
        clash = sorted(taken & set(self.ranks.groups))
        if clash:
            raise ValueError(f"ranks.groups: {clash[0]} is already a column of the index")
        return self

    @model_validator(mode="after")
    def one_missing_policy(self) -> IndexSpec:
        imputes = self.impute.method != "none"
        if self.missing == "impute" and not imputes:
            raise ValueError("missing: impute needs an impute method (impute: {method: ...})")
        if self.missing in ("exclude", "reweight") and imputes:
            raise ValueError(
                f"missing: {self.missing}, but impute.method is {self.impute.method}: state one "
                "policy (missing: impute to impute)"
            )
        return self

    @model_validator(mode="after")
    def base_needs_periods(self) -> IndexSpec:
        based = self.periods is not None and self.periods.base is not None
        for path, node in node_paths(self).items():
            for step in ("normalise", "rescale"):
                if getattr(getattr(node, step, None), "base", False) and not based:
                    raise ValueError(f"{path}.{step}.base needs a base period (periods.base)")
        if self.normalise.base and not based:
            raise ValueError("normalise.base needs a base period (periods.base)")
        return self

    @property
    def domains(self) -> list[Node | Indicator]:
        """The index's direct children, published as `<domain>_score` and `<domain>_rank`."""
        return list(self.index.children)

    def indicators(self) -> list[Indicator]:
        return [n for n in walk(self.index) if isinstance(n, Indicator)]


def walk(node: Node | Indicator) -> list[Node | Indicator]:
    """A node and all below it, depth first."""
    if isinstance(node, Indicator):
        return [node]
    return [node] + [n for child in node.children for n in walk(child)]


def node_paths(spec: IndexSpec) -> dict[str, Node | Indicator]:
    """Every node and indicator by its field path in the spec, e.g. `index.children.0`."""
    paths: dict[str, Node | Indicator] = {}

    def visit(node: Node | Indicator, path: str) -> None:
        paths[path] = node
        for number, child in enumerate(getattr(node, "children", None) or []):
            visit(child, f"{path}.children.{number}")

    visit(spec.index, "index")
    return paths


def weight_warnings(spec: IndexSpec) -> list[str]:
    """Explicit weights that are 0 (the child does not count) or do not add up to 1 (what the
    node's aggregation makes of them), one line each naming the field."""
    lines = []
    for path, node in node_paths(spec).items():
        if not isinstance(node, Node) or node.weights != "explicit":
            continue
        for number, child in enumerate(node.children):
            if child.weight == 0:
                lines.append(
                    f"{path}.children.{number}.weight: 0, so {child.name} does not count in "
                    f"{node.name}"
                )
        total = math.fsum(c.weight or 0.0 for c in node.children)
        if total and abs(total - 1) > 1e-9:
            method = (node.aggregate or spec.aggregate).method
            effect = (
                "uses them as they are, so scores scale with their sum"
                if method == "weighted_sum"
                else "uses them relative to their sum"
            )
            lines.append(
                f"{path}: the weights of {node.name} sum to {total:.6g}, not 1; {method} {effect}"
            )
    return lines


def _describe(error: ValidationError, source: str) -> str:
    lines = []
    for problem in error.errors():
        # Drop pydantic's own steps from the path (union tags, validator names).
        where = ".".join(
            str(part)
            for part in problem["loc"]
            if part not in ("node", "indicator") and "[" not in str(part)
        )
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {where or '(top level)'}: {message}")
    # A union reports each alternative; keep each distinct line once.
    return "\n".join(dict.fromkeys(lines))


def _size_problem(data: dict) -> str | None:
    """Too many inputs, or a tree too deep or too large; walked without recursion, before
    validation recurses into it."""
    inputs = data.get("inputs")
    if isinstance(inputs, list) and len(inputs) > MAX_INPUTS:
        return f"inputs: at most {MAX_INPUTS} inputs, not {len(inputs)}"
    stack, count = [(data.get("index"), 1)], 0
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict):
            continue
        count += 1
        if depth > MAX_TREE_DEPTH:
            return f"index: the tree is deeper than {MAX_TREE_DEPTH} levels"
        if count > MAX_TREE_NODES:
            return f"index: at most {MAX_TREE_NODES} nodes and indicators"
        children = node.get("children")
        if isinstance(children, list):
            stack.extend((child, depth + 1) for child in children)
    return None


def parse_spec(data: dict, source: str = "spec") -> IndexSpec:
    problem = _size_problem(data)
    if problem:
        raise SpecError(f"{source}: {problem}")
    try:
        return IndexSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_describe(error, source)) from None


class _Refused(Exception):
    """YAML a spec may not use; the message says where and why."""


class _SpecLoader(yaml.SafeLoader):
    """The safe loader, refusing anchors and aliases (so nothing can expand: no "billion laughs")
    and nesting deeper than MAX_YAML_DEPTH (so nothing recurses that deep)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(f"line {line}: YAML anchors and aliases (& and *) are not allowed")
        self.depth += 1
        if self.depth > MAX_YAML_DEPTH:
            raise _Refused(f"line {line}: nested deeper than {MAX_YAML_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_spec(path: Path | str) -> IndexSpec:
    """Read and validate a spec file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SPEC_BYTES + 1)  # never more, whatever the file
    except OSError as error:
        raise SpecError(f"{path}: cannot be read ({error.strerror})") from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(f"{path}: larger than 1 MiB, the most a spec may be")
    try:
        data = yaml.load(raw.decode("utf-8"), Loader=_SpecLoader)  # noqa: S506 (a safe loader)
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not UTF-8 text") from None
    except _Refused as error:
        raise SpecError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec is a YAML mapping")
    spec = parse_spec(data, path.name)
    spec.source = path.resolve()
    return spec
