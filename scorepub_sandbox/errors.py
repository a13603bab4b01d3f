"""Errors raised inside the sandbox and caught by the publisher and the server as well.

Defined here (``publisher.errors`` imports them) so that an artifact or bundle refused in a
template and one refused at publish are the very same classes everywhere.
"""
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


class BundleError(PublishError):
    """The Script Bundle zip was refused."""

    field = "bundle.zip"


class ArtifactError(PublishError):
    """An artifact is missing, unreadable or does not match its digest."""
