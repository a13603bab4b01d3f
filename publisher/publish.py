"""Publishing: validate an experiment, freeze it into an artifact, register the version."""
from __future__ import annotations

import dataclasses
import datetime as dt
import platform
from pathlib import Path
from typing import Callable

import numpy
import orjson
import pandas

from . import artifact
from .artifact_store import ArtifactStore
from .errors import NotFound
from .experiment import Experiment, read_experiment
from .registry import Published, Registry, check_service_name, default_actor  # noqa: F401 - re-exported
from .schema import schema_to_document

# A smoke call runs the sample through the real runtime; the serving layer supplies it.
SmokeCall = Callable[[artifact.Artifact], None]


@dataclasses.dataclass
class PublishOutcome:
    published: Published
    warnings: list[str]

    def as_dict(self) -> dict:
        v = self.published.version
        out = {"service": v.service, "service_id": v.service_id, "version": v.version, "digest": v.digest,
               "live": self.published.live, "created": self.published.created, "warnings": self.warnings}
        if self.published.keys:
            out["keys"] = self.published.keys
        return out


def environment() -> dict:
    return {"python": platform.python_version(), "pandas": pandas.__version__, "numpy": numpy.__version__}


def publish(folder: Path, name: str, *, settings, registry: Registry, store: ArtifactStore,
            message: str = "", promote: bool = False, published_by: str | None = None,
            bundle_path: Path | None = None, smoke: SmokeCall | None = None) -> PublishOutcome:
    check_service_name(name)
    experiment = read_experiment(folder, settings, bundle_path)
    return publish_experiment(experiment, name, settings=settings, registry=registry, store=store,
                              message=message, promote=promote, published_by=published_by, smoke=smoke)


def publish_experiment(experiment: Experiment, name: str, *, settings, registry: Registry,
                       store: ArtifactStore, message: str = "", promote: bool = False,
                       published_by: str | None = None, smoke: SmokeCall | None = None) -> PublishOutcome:
    by = published_by or default_actor()
    members = experiment.members()
    env = environment()
    at = dt.datetime.now(dt.timezone.utc).isoformat()

    def freeze(version: int | None) -> tuple[str, bytes]:
        record = {"version": version, "by": by, "at": at, "message": message}
        return artifact.build(name, members, env, record)

    digest, provisional = freeze(None)
    already = _existing(registry, name, digest)
    warnings = list(experiment.warnings)
    if already is None and smoke is not None and experiment.sample is not None:
        smoke(artifact.load(provisional, digest))

    def store_artifact(version: int) -> None:
        store.put(digest, freeze(version)[1])

    schema_json = orjson.dumps(schema_to_document(experiment.schema)).decode()
    published = registry.publish(name, digest, schema_json, by, message, promote=promote,
                                 store_artifact=store_artifact)
    if not published.created:
        warnings.append(f"identical to version {published.version.version}: no new version")
    return PublishOutcome(published, warnings)


def _existing(registry: Registry, name: str, digest: str):
    try:
        return next((v for v in registry.versions(name) if v.digest == digest), None)
    except NotFound:  # a new service
        return None
