"""Errors the publisher raises; each carries a one-line message fit for a terminal.

PublishError, BundleError and ArtifactError are the sandbox package's own (a template refuses a
damaged artifact with them too): imported here, so every caller catches the same classes.
"""
from __future__ import annotations

from scorepub_sandbox.errors import ArtifactError, BundleError, PublishError

__all__ = ["PublishError", "SchemaError", "BundleError", "ScriptError", "ArtifactError", "NotFound", "Conflict"]


class SchemaError(PublishError):
    """schema.json (or an inferred schema) is invalid."""

    field = "schema.json"


class ScriptError(PublishError):
    """score.py does not compile or does not define a usable azureml_main."""

    field = "score.py"


class NotFound(PublishError):
    """No such service or version."""


class Conflict(PublishError):
    """The operation contradicts the registry's state (e.g. promoting a retired version)."""
