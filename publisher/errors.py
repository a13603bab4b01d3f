"""Errors the publisher raises; each carries a one-line message fit for a terminal."""


class PublishError(Exception):
    """An experiment, schema, bundle or registry operation was refused."""


class SchemaError(PublishError):
    """schema.json (or an inferred schema) is invalid."""


class BundleError(PublishError):
    """The Script Bundle zip was refused."""


class ScriptError(PublishError):
    """score.py does not compile or does not define a usable azureml_main."""


class ArtifactError(PublishError):
    """An artifact is missing, unreadable or does not match its digest."""


class NotFound(PublishError):
    """No such service or version."""


class Conflict(PublishError):
    """The operation contradicts the registry's state (e.g. promoting a retired version)."""
