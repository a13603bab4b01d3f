"""Cells as the classic service wrote them: text, with missing values as null."""
from __future__ import annotations


def text_cell(value):
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return str(value)


def text_columns(table) -> list[list]:
    return [[text_cell(v) for v in c.to_pylist()] for c in table.columns]
