"""Boolean text has one truth table: the whole-column path and the cell rule agree on every spelling."""
from __future__ import annotations

import pytest

from publisher.coercion import CellError, InputError, coerce_values, convert_cell
from publisher.schema import ColumnSpec, ParameterSpec

SPELLINGS = {"true": True, "True": True, "TRUE": True, "1": True, " true ": True, "tRuE": True,
             "false": False, "False": False, "FALSE": False, "0": False, "\tFalse": False, "fAlSe": False}


@pytest.mark.parametrize("text, value", SPELLINGS.items())
def test_each_spelling_means_the_same_in_a_cell_and_in_a_column(text, value):
    assert convert_cell("boolean", text) is value
    column = coerce_values(ColumnSpec("b", "boolean"), [text, text], "input1")
    assert column.data.tolist() == [value, value]


@pytest.mark.parametrize("text", ["yes", "no", "t", "f", "2", "", "truee", "on"])
def test_other_text_is_not_a_boolean_either_way(text):
    with pytest.raises(CellError, match="is not a boolean"):
        convert_cell("boolean", text)
    with pytest.raises(InputError, match="is not a boolean"):
        coerce_values(ColumnSpec("b", "boolean"), ["true", text], "input1")


def test_has_default_is_shared_and_none_is_a_default():
    for spec in (ColumnSpec("a", "string", nullable=True), ParameterSpec("string")):
        assert not spec.has_default
    assert ColumnSpec("a", "string", nullable=True, default=None).has_default
    assert ParameterSpec("integer", default=0).has_default
