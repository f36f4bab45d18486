"""The README's worked example of a spec is a valid spec."""

import yaml

from indices.composite.spec import parse_spec
from tests.conftest import REPO


def test_the_worked_example_spec_is_valid():
    text = (REPO / "README.md").read_text()
    section = text.split("### The spec format", 1)[1]
    example = section.split("```yaml", 1)[1].split("```", 1)[0]
    spec = parse_spec(yaml.safe_load(example), "README")
    assert spec.name == "older_people_need"
    assert [d.name for d in spec.domains] == ["frailty", "income"]
    assert spec.uncertainty.runs == 200
