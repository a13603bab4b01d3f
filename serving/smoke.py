"""The publish-time smoke call: sample.json through the call core, in a throwaway pool of the
publishing process (the artifact is not in the store yet, and no replica serves it)."""
from __future__ import annotations

from publisher import artifact
from publisher.errors import PublishError
from publisher.schema import parse_schema

from .calls import CallCore, CallFailed, CallRequest, Target
from .runtime.dispatcher import Runtime


def smoke_call(settings):
    """A ``SmokeCall`` for :func:`publisher.publish.publish` (the publisher knows nothing of this)."""

    def smoke(art: artifact.Artifact) -> None:
        schema = parse_schema(art.schema_document)
        archive = artifact.build(art.service, art.members, art.manifest["environment"], art.manifest["published"])[1]
        runtime = Runtime(settings, lambda digest: archive)
        try:
            CallCore(settings, runtime).score(Target(art.service, art.digest, schema),
                                              CallRequest(art.members["sample.json"], "rows"))
        except CallFailed as failed:
            error = failed.error
            if error.status == 400 and error.code in ("BadArgument", "BadUserArgument"):
                raise PublishError(f"sample.json: {error.message}", field="sample.json") from None
            # a script's failure names its own file and line already
            raise PublishError(f"smoke call with sample.json failed: {failed.reason} "
                               "(publish with --no-smoke to skip it)", field="score.py") from None
        finally:
            runtime.close()

    return smoke
