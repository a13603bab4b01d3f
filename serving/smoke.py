"""The publish-time smoke call: sample.json through the real runtime, in a throwaway pool."""
from __future__ import annotations

from publisher import artifact
from publisher.errors import PublishError
from publisher.schema import parse_schema

from . import codecs
from .errors import ApiError
from .runtime.dispatcher import Runtime
from .runtime.errors import RuntimeFailure


def smoke_call(settings):
    """A ``SmokeCall`` for :func:`publisher.publish.publish` (the publisher knows nothing of this)."""

    def smoke(art: artifact.Artifact) -> None:
        schema = parse_schema(art.schema_document)
        try:
            request = codecs.BY_NAME["rows"].decode(art.members["sample.json"], schema, settings.max_rows)
        except ApiError as exc:
            raise PublishError(f"sample.json: {exc.message}") from None
        archive = artifact.build(art.service, art.members, art.manifest["environment"], art.manifest["published"])[1]
        runtime = Runtime(settings, lambda digest: archive)
        try:
            runtime.call(art.digest, schema, request.inputs, request.parameters)
        except RuntimeFailure as exc:  # a script's failure names its own file and line already
            raise PublishError(f"smoke call with sample.json failed: {exc} "
                               "(publish with --no-smoke to skip it)") from None
        finally:
            runtime.close()

    return smoke

