"""Index specs: a YAML file declares a tree (indicators → domains → index), each node with its
weight and methods. Loading validates it; a wrong spec is a one-line-per-problem error naming the
field and the allowed values."""

from __future__ import annotations

from pathlib import Path
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


class SpecError(ValueError):
    """A spec that cannot be used; the message lists every problem with the field's path."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check(name: str, registry: dict[str, Any], kind: str) -> str:
    if name not in registry:
        raise ValueError(f"unknown {kind} method {name!r}; allowed: {', '.join(sorted(registry))}")
    return name


class Step(Strict):
    """A named method and its parameters, e.g. {method: minmax, low: 0, high: 100}. Each kind
    of step checks its method against its registry in `indices.composite.methods`."""

    model_config = ConfigDict(extra="allow")
    method: str
    registry: ClassVar[dict[str, Any]]
    kind: ClassVar[str]

    @field_validator("method")
    @classmethod
    def known(cls, value: str) -> str:
        return _check(value, cls.registry, cls.kind)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Impute(Step):
    method: str = "none"
    registry, kind = methods.IMPUTERS, "imputation"


class Treat(Step):
    method: str = "none"
    registry, kind = methods.TREATMENTS, "treatment"


class Normalise(Step):
    method: str = "minmax"
    registry, kind = methods.NORMALISERS, "normalisation"


class Aggregate(Step):
    method: str = "arithmetic"
    registry, kind = methods.AGGREGATORS, "aggregation"


class Input(Strict):
    """A table the index reads: a CSV or Parquet path, absolute or relative to the spec's
    folder, or `reference:<file>` (reference data) or `warehouse:<file>` (the private warehouse).
    Tables after the first are joined to it on the unit key."""

    path: str
    where: str | None = None  # a DuckDB filter, e.g. "level = 'lsoa'"
    rename: dict[str, str] = Field(default_factory=dict)
    columns: list[str] | None = None


class Indicator(Strict):
    """A leaf: a column, or a rate from numerator and denominator columns (each summed)."""

    name: str
    column: str | None = None
    numerator: list[str] | None = None
    denominator: list[str] | None = None
    direction: Literal["higher_is_worse", "higher_is_better"] = "higher_is_worse"
    weight: float | None = Field(default=None, ge=0)
    shrink: Literal["none", "ebayes"] = "none"
    treat: Treat | None = None
    normalise: Normalise | None = None
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
        return self


class Summaries(Strict):
    """Summaries of the small areas per larger area, as the IoD publish for authorities."""

    population: str
    most_deprived_share: float = 0.10


class Uncertainty(Strict):
    """Monte Carlo sensitivity analysis: weights perturbed and methods drawn per run."""

    runs: int = Field(default=0, ge=0)
    seed: int = 0
    weight_noise: float = Field(default=0.25, ge=0, lt=1)
    normalise: list[str] = Field(default_factory=list)
    aggregate: list[str] = Field(default_factory=list)

    @field_validator("normalise")
    @classmethod
    def known_normalisers(cls, value: list[str]) -> list[str]:
        return [_check(v, methods.NORMALISERS, "normalisation") for v in value]

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
    index: Node
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


def parse_spec(data: dict, source: str = "spec") -> IndexSpec:
    try:
        return IndexSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_describe(error, source)) from None


def load_spec(path: Path | str) -> IndexSpec:
    """Read and validate a spec file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise SpecError(f"{path}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec is a YAML mapping")
    spec = parse_spec(data, path.name)
    spec.source = path.resolve()
    return spec
