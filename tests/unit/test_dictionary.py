"""The committed data dictionary is the one the schemas write."""

from indices.dictionary import data_dictionary
from indices.sources.schemas import conformed_schemas
from tests.conftest import REPO


def test_the_committed_dictionary_is_current():
    committed = (REPO / "docs" / "data-dictionary.md").read_text()
    assert committed == data_dictionary(), (
        "run: .venv/bin/indices dictionary > docs/data-dictionary.md"
    )


def test_every_conformed_column_is_described():
    for source, schema in conformed_schemas().items():
        for name, column in schema.columns.items():
            assert column.description, f"{source}.{name} has no description"
