"""Web service parameters (classic ``GlobalParameters``) checked against a schema's declaration."""
from __future__ import annotations

import numpy as np

from scorepub_sandbox.table import datetime_strings

from .coercion import CellError, InputError, _short, convert_cell, describe


def resolve_parameters(given, declared: dict) -> dict:
    """The ``azureml_parameters`` a script gets: declared defaults overlaid with ``given``.

    Unknown names are refused (``UnexpectedParameter``), values are converted by the declared
    type (strings such as "0.5" included, as classic clients send them), and a declared
    parameter without a default must be given (``MissingParameter``).
    """
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise InputError("InputParseError", "GlobalParameters", "GlobalParameters must be an object.")
    out = {}
    for name, value in given.items():
        spec = declared.get(name)
        if spec is None:
            known = ", ".join(sorted(declared)) or "none"
            raise InputError("UnexpectedParameter", f"GlobalParameters.{name}",
                             f"Parameter '{_short(name, 64)}' is not declared by this service (declared: {known}).")
        out[name] = _convert(name, spec.type, value)
    for name, spec in declared.items():
        if name not in out:
            if not spec.has_default:
                raise InputError("MissingParameter", f"GlobalParameters.{name}",
                                 f"Parameter '{name}' is required (it has no default).")
            out[name] = _convert(name, spec.type, spec.default)
    return out


def _convert(name, type_, value):
    if value is None:
        return None
    try:
        converted = convert_cell(type_, value)
    except CellError as exc:
        raise InputError("InputParseError", f"GlobalParameters.{name}",
                         f"Parameter '{name}': {describe(value)} {exc}.") from None
    if type_ == "datetime":  # a JSON-able, normalized form: ISO 8601 in UTC
        return datetime_strings(np.array([converted], dtype=np.int64))[0]
    return converted

