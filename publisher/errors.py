"""Errors the publisher raises; each carries a one-line message fit for a terminal."""
from __future__ import annotations


class PublishError(Exception):
    """An experiment, schema, bundle or registry operation was refused.

    ``field`` names the experiment file the problem is in (``score.py``, ``bundle.zip``,
    ``schema.json``, ``sample.json``, ``requirements.txt``), set where the error is raised; None
    when it is in none of them (the service name, the registry's state, ...). The admin page
    shows the message next to that file's form field.
    """

    field: str | None = None

    def __init__(self, message: object = "", *, field: str | None = None):
        super().__init__(message)
        if field is not None:
            self.field = field


class SchemaError(PublishError):
    """schema.json (or an inferred schema) is invalid."""

    field = "schema.json"


class BundleError(PublishError):
    """The Script Bundle zip was refused."""

    field = "bundle.zip"


class ScriptError(PublishError):
    """score.py does not compile or does not define a usable azureml_main."""

    field = "score.py"


class ArtifactError(PublishError):
    """An artifact is missing, unreadable or does not match its digest."""


class NotFound(PublishError):
    """No such service or version."""


class Conflict(PublishError):
    """The operation contradicts the registry's state (e.g. promoting a retired version)."""
