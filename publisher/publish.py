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
from .environments import Environments, Progress, lock_id, pinned
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
    environment: dict = dataclasses.field(default_factory=lambda: {"id": "default"})

    def as_dict(self) -> dict:
        v = self.published.version
        out = {"service": v.service, "service_id": v.service_id, "version": v.version, "digest": v.digest,
               "live": self.published.live, "created": self.published.created, "warnings": self.warnings}
        if self.published.keys:
            out["keys"] = self.published.keys
        out["environment"] = self.environment
        return out


def environment(lock: bytes | None = None) -> dict:
    """The manifest's record of what a version runs on (outside the digest)."""
    if lock is None:
        return {"python": platform.python_version(), "pandas": pandas.__version__, "numpy": numpy.__version__,
                "id": "default"}
    packages = pinned(lock)
    return {"python": platform.python_version(), "pandas": packages.get("pandas"), "numpy": packages.get("numpy"),
            "id": lock_id(lock)}


def publish(folder: Path, name: str, *, settings, registry: Registry, store: ArtifactStore,
            message: str = "", promote: bool = False, published_by: str | None = None,
            bundle_path: Path | None = None, smoke: SmokeCall | None = None, upgrade: bool = False,
            progress: Progress | None = None) -> PublishOutcome:
    check_service_name(name)
    experiment = read_experiment(folder, settings, bundle_path)
    return publish_experiment(experiment, name, settings=settings, registry=registry, store=store,
                              message=message, promote=promote, published_by=published_by, smoke=smoke,
                              upgrade=upgrade, progress=progress)


def build_environment(experiment: Experiment, settings, *, upgrade: bool = False,
                      progress: Progress | None = None) -> tuple[dict, list[str]]:
    """Resolve the experiment's requirements into its lock and build that environment (once per
    lock); set ``experiment.lock``. Returns what the environment is, for the outcome, and warnings."""
    if experiment.requirements is None and experiment.given_lock is None:
        return {"id": "default"}, []
    envs = Environments(settings)
    options = {} if progress is None else {"progress": progress}
    resolution = envs.resolve(experiment.requirements, experiment.given_lock, upgrade=upgrade, **options)
    experiment.lock = resolution.lock
    if resolution.lock is None:
        return {"id": "default", "note": "requirements.txt is met by the default environment"}, resolution.warnings
    built = envs.find(resolution.lock)
    env = built if built is not None else envs.ensure(resolution.lock, **options)
    info = env.info()
    return ({"id": env.id, "packages": len(info["packages"]), "size_mb": round(info["size_bytes"] / 2**20, 1),
             "resolved": not resolution.cached, "built": built is None,
             "build_seconds": info["build_seconds"] if built is None else 0.0}, resolution.warnings)


def publish_experiment(experiment: Experiment, name: str, *, settings, registry: Registry,
                       store: ArtifactStore, message: str = "", promote: bool = False,
                       published_by: str | None = None, smoke: SmokeCall | None = None,
                       upgrade: bool = False, progress: Progress | None = None) -> PublishOutcome:
    by = published_by or default_actor()
    env_outcome, env_warnings = build_environment(experiment, settings, upgrade=upgrade, progress=progress)
    members = experiment.members()
    env = environment(experiment.lock)
    at = dt.datetime.now(dt.timezone.utc).isoformat()

    def freeze(version: int | None) -> tuple[str, bytes]:
        record = {"version": version, "by": by, "at": at, "message": message}
        return artifact.build(name, members, env, record)

    digest, provisional = freeze(None)
    already = _existing(registry, name, digest)
    warnings = list(experiment.warnings) + env_warnings
    if already is None and smoke is not None and experiment.sample is not None:
        smoke(artifact.load(provisional, digest))

    def store_artifact(version: int) -> None:
        store.put(digest, freeze(version)[1])

    schema_json = orjson.dumps(schema_to_document(experiment.schema)).decode()
    published = registry.publish(name, digest, schema_json, by, message, promote=promote,
                                 store_artifact=store_artifact)
    if not published.created:
        warnings.append(f"identical to version {published.version.version}: no new version")
    return PublishOutcome(published, warnings, env_outcome)


def _existing(registry: Registry, name: str, digest: str):
    try:
        return next((v for v in registry.versions(name) if v.digest == digest), None)
    except NotFound:  # a new service
        return None
