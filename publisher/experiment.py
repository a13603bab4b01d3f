"""Read and validate an experiment folder (publishing.md, "An experiment folder")."""
from __future__ import annotations

import dataclasses
import importlib.metadata
from pathlib import Path

import orjson
from packaging.requirements import InvalidRequirement, Requirement

from . import bundle as bundle_mod
from .coercion import InputError, rows_to_table
from .errors import PublishError, SchemaError
from .schema import ServiceSchema, infer_schema, parse_schema, schema_to_document
from .script_check import check_script


@dataclasses.dataclass
class Experiment:
    score_py: bytes
    schema: ServiceSchema
    bundle: bytes | None
    sample: dict | None
    requirements: bytes | None
    warnings: list[str]

    def members(self) -> dict:
        """The artifact's content members, normalized."""
        out = {
            "score.py": self.score_py,
            "schema.json": orjson.dumps(schema_to_document(self.schema), option=orjson.OPT_INDENT_2) + b"\n",
        }
        if self.bundle is not None:
            out["bundle.zip"] = self.bundle
        if self.sample is not None:
            out["sample.json"] = orjson.dumps(self.sample, option=orjson.OPT_INDENT_2) + b"\n"
        if self.requirements is not None:
            out["requirements.txt"] = self.requirements
        return out


def _read_json(path: Path):
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise PublishError(f"{path.name}: not valid JSON ({exc})") from None


def read_experiment(folder: Path, settings, bundle_path: Path | None = None) -> Experiment:
    """Everything publishing checks before anything is written; raise PublishError if refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"{folder}: not a folder")
    script = folder / "score.py"
    if not script.is_file():
        raise PublishError(f"{folder}: has no score.py")
    warnings: list[str] = []
    sample = _read_json(folder / "sample.json") if (folder / "sample.json").is_file() else None
    if isinstance(sample, list):
        sample = {"input1": sample}
    if (folder / "schema.json").is_file():
        schema = parse_schema(_read_json(folder / "schema.json"))
    elif sample is not None:
        schema = infer_schema(sample)
        cols = ", ".join(f"{c.name} ({c.type})" for c in schema.inputs["input1"].columns)
        warnings.append(f"no schema.json: one port input1 with columns inferred from sample.json: {cols}")
    else:
        raise SchemaError(f"{folder}: has neither schema.json nor sample.json to infer a schema from")
    score_py = script.read_bytes()
    check_script(score_py, len(schema.inputs))
    bundle = _read_bundle(folder, settings, bundle_path)
    if sample is not None:
        check_sample(sample, schema, settings.max_rows)
    requirements = None
    if (folder / "requirements.txt").is_file():
        requirements = (folder / "requirements.txt").read_bytes()
        check_requirements(requirements)
    capped = schema.limits.capped(settings)
    for key, value in vars(schema.limits).items():
        if getattr(capped, key) < value:
            warnings.append(f"limits.{key} {value} is above this server's maximum; {getattr(capped, key)} applies")
    return Experiment(score_py, schema, bundle, sample, requirements, warnings)


def _read_bundle(folder: Path, settings, bundle_path: Path | None) -> bytes | None:
    limits = (settings.max_bundle_bytes, settings.max_bundle_files)
    zip_path = Path(bundle_path) if bundle_path else folder / "bundle.zip"
    if bundle_path or zip_path.is_file():
        if bundle_path and not zip_path.is_file():
            raise PublishError(f"bundle: {zip_path} does not exist")
        if (folder / "bundle").is_dir() and not bundle_path:
            raise PublishError(f"{folder}: has both bundle.zip and bundle/; keep one")
        return bundle_mod.normalize_zip(zip_path.read_bytes(), *limits)
    if (folder / "bundle").is_dir():
        return bundle_mod.zip_folder(folder / "bundle", *limits)
    return None


def check_sample(sample, schema: ServiceSchema, max_rows: int) -> None:
    if not isinstance(sample, dict):
        raise PublishError("sample.json: must be {\"input1\": [rows], ...} or a list of rows")
    unknown = set(sample) - set(schema.inputs)
    if unknown:
        raise PublishError(f"sample.json: port(s) {', '.join(sorted(unknown))} not declared in the schema")
    for port, spec in schema.inputs.items():
        if port not in sample:
            raise PublishError(f"sample.json: has no rows for port {port}")
        try:
            rows_to_table(port, spec, sample[port], max_rows)
        except InputError as exc:
            raise PublishError(f"sample.json: {exc.target}: {exc.message}") from None


def check_requirements(text: bytes) -> None:
    """Each requirement must already be satisfied here: nothing is installed at run time."""
    for number, line in enumerate(text.decode("utf-8", "replace").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise PublishError(f"requirements.txt:{number}: {exc}") from None
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            raise PublishError(f"requirements.txt:{number}: package '{req.name}' is not installed "
                               "in the serving environment") from None
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            raise PublishError(f"requirements.txt:{number}: {req} is wanted but {req.name} {installed} "
                               "is installed")
