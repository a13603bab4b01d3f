"""Read and validate an experiment folder (publishing.md, "An experiment folder")."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson

from . import bundle as bundle_mod
from . import python2
from .environments import LOCK_SOURCES, given_lock_pins, parse_requirements
from .coercion import InputError, rows_to_table
from .errors import PublishError, SchemaError, ScriptError
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
    originals: dict = dataclasses.field(default_factory=dict)  # sources as published, when converted
    conversion: dict | None = None  # what the Python 2.7 conversion did (conversion.json)
    given_lock: tuple[str, bytes] | None = None  # (file name, content): a lock the user gave wins
    lock: bytes | None = None  # the resolved requirements.lock, set at publish (environments.py)

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
        if self.lock is not None:
            out["requirements.lock"] = self.lock
        out.update(self.originals)
        if self.conversion is not None:
            out["conversion.json"] = orjson.dumps(self.conversion, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        return out


def _json(name: str, data: bytes):
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise PublishError(f"{name}: not valid JSON ({exc})", field=name) from None


def read_experiment(folder: Path, settings, bundle_path: Path | None = None) -> Experiment:
    """Everything publishing checks before anything is written; raise PublishError if refused."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PublishError(f"{folder}: not a folder")
    if not (folder / "score.py").is_file():
        raise PublishError(f"{folder}: has no score.py")
    files = {name: (folder / name).read_bytes() for name in
             ("score.py", "schema.json", "sample.json", "requirements.txt", "bundle.zip", *LOCK_SOURCES)
             if (folder / name).is_file()}
    if bundle_path is not None:
        if not Path(bundle_path).is_file():
            raise PublishError(f"bundle: {bundle_path} does not exist", field="bundle.zip")
        files["bundle.zip"] = Path(bundle_path).read_bytes()
    elif (folder / "bundle").is_dir():
        if "bundle.zip" in files:
            raise PublishError(f"{folder}: has both bundle.zip and bundle/; keep one")
        files["bundle.zip"] = None  # zipped below, from the folder
    return experiment_from_files(files, settings, bundle_folder=folder / "bundle")


def experiment_from_files(files: dict, settings, bundle_folder: Path | None = None) -> Experiment:
    """Validate an experiment given as file contents (an uploaded form, or a folder read above)."""
    if not files.get("score.py"):
        raise ScriptError("score.py is required")
    warnings: list[str] = []
    sample = _json("sample.json", files["sample.json"]) if files.get("sample.json") else None
    if isinstance(sample, list):
        sample = {"input1": sample}
    if files.get("schema.json"):
        schema = parse_schema(_json("schema.json", files["schema.json"]))
    elif sample is not None:
        schema = infer_schema(sample)
        cols = ", ".join(f"{c.name} ({c.type})" for c in schema.inputs["input1"].columns)
        warnings.append(f"no schema.json: one port input1 with columns inferred from sample.json: {cols}")
    else:
        raise SchemaError("schema.json: missing; give one (or a sample.json to infer it from): there is neither schema.json nor sample.json")
    limits = (settings.max_bundle_bytes, settings.max_bundle_files)
    bundle = None
    if "bundle.zip" in files and files["bundle.zip"] is None:
        bundle = bundle_mod.zip_folder(bundle_folder, *limits)
    elif files.get("bundle.zip"):
        bundle = bundle_mod.normalize_zip(files["bundle.zip"], *limits)
    sources = python2.prepare_sources(files["score.py"], bundle, schema.python_version)
    warnings += sources.warnings
    warnings += classic_uses(sources, schema.compat)
    if sources.conversion is not None:
        schema = dataclasses.replace(schema, python_version=python2.PY2)
    check_script(sources.score_py, len(schema.inputs))
    if sample is not None:
        check_sample(sample, schema, settings.max_rows)
    requirements = files.get("requirements.txt") or None
    if requirements is not None:
        parse_requirements(requirements)  # its syntax now; resolution is the publish's (environments.py)
    locks = [name for name in LOCK_SOURCES if files.get(name)]
    if len(locks) > 1:
        raise PublishError(f"give one lock file, not {' and '.join(locks)}", field="requirements.txt")
    given_lock = (locks[0], files[locks[0]]) if locks else None
    if given_lock is not None:
        given_lock_pins(*given_lock)
        if requirements is not None:
            warnings.append(f"{locks[0]} is given: it is installed as it is, and requirements.txt is kept for reference")
    capped = schema.limits.capped(settings)
    for key, value in vars(schema.limits).items():
        if getattr(capped, key) < value:
            warnings.append(f"limits.{key} {value} is above this server's maximum; {getattr(capped, key)} applies")
    return Experiment(sources.score_py, schema, sources.bundle, sample, requirements, warnings,
                      sources.originals, sources.conversion, given_lock)


SCAN_BUDGET_BYTES = 1 << 20  # LibCST reads about 50 KB a second: at most ~20 s of a publish


def classic_uses(sources: python2.ExperimentSources, compat: str) -> list[str]:
    """One line per use of a pandas 0.18 / numpy 1.11 API that today's releases removed, at the
    line of the file as published (``score.py:12: DataFrame.ix → .loc/.iloc``)."""
    from .classic_apis import scan

    files = {"score.py": sources.score_py}
    if sources.bundle is not None:
        files.update({f"Script Bundle/{n}": d for n, d in bundle_mod.read_zip(sources.bundle).items()
                      if n.endswith(".py")})
    converted = (sources.conversion or {}).get("files", {})
    tail = "" if compat == "classic" else " (compat is \"none\": this call will fail)"
    out, budget, skipped = [], SCAN_BUDGET_BYTES, []
    for name, data in files.items():
        if len(data) > budget:  # a vendored library in the bundle: the report is for the user's code
            skipped.append(name)
            continue
        budget -= len(data)
        line_map = converted.get(name, {}).get("line_map")
        try:
            uses = scan(python2.decode(data)[0], name)
        except (RecursionError, MemoryError):
            skipped.append(name)
            continue
        for use in uses:
            use = dataclasses.replace(use, line=python2.original_line(line_map, use.line))
            out.append(f"{use}{tail}")
    if skipped:
        out.append(f"classic API uses not looked for in {len(skipped)} large file(s): {', '.join(skipped[:3])}"
                   + (", ..." if len(skipped) > 3 else ""))
    return out


def check_sample(sample, schema: ServiceSchema, max_rows: int) -> None:
    if not isinstance(sample, dict):
        raise PublishError("sample.json: must be {\"input1\": [rows], ...} or a list of rows", field="sample.json")
    unknown = set(sample) - set(schema.inputs)
    if unknown:
        raise PublishError(f"sample.json: port(s) {', '.join(sorted(unknown))} not declared in the schema",
                           field="sample.json")
    for port, spec in schema.inputs.items():
        if port not in sample:
            raise PublishError(f"sample.json: has no rows for port {port}", field="sample.json")
        try:
            rows_to_table(port, spec, sample[port], max_rows)
        except InputError as exc:
            raise PublishError(f"sample.json: {exc.target}: {exc.message}", field="sample.json") from None
