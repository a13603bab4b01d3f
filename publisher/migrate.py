"""``scorepub migrate FOLDER``: a modernized copy of a classic experiment, and its diff.

Publishing already runs a classic experiment unchanged (Python 2 converted, the classic pandas
and numpy APIs provided by the compatibility layer); migrating is for users who want to own
modern code: the same conversion from Python 2.7, then a LibCST rewrite of the pandas 0.18 /
numpy 1.11 calls into today's (``publisher/classic_apis.py``), written to a new folder so the
original stays as it was.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import shutil
import zipfile
from pathlib import Path

import orjson

from scorepub_sandbox import py2_runtime

from . import bundle as bundle_mod
from . import classic_apis, python2
from .errors import PublishError


@dataclasses.dataclass
class Migration:
    out: Path
    python_version: str  # what the sources were taken as
    diffs: dict  # file -> unified diff (only files that changed)
    remaining: list  # classic uses the rewrite could not make modern, as "file:line: old → new"


def migrate(folder: Path, out: Path | None = None) -> Migration:
    folder = Path(folder).resolve()
    if not (folder / "score.py").is_file():
        raise PublishError(f"{folder}: has no score.py")
    out = Path(out) if out is not None else folder.with_name(folder.name + "-modern")
    if out.exists():
        raise PublishError(f"{out}: exists already; give another --out")
    schema = {}
    if (folder / "schema.json").is_file():
        try:
            schema = orjson.loads((folder / "schema.json").read_bytes())
        except orjson.JSONDecodeError as exc:
            raise PublishError(f"schema.json: not valid JSON ({exc})", field="schema.json") from None
    declared = schema.get("python_version") if isinstance(schema, dict) else None
    try:
        declared = python2.normalize_version(None if declared is None else str(declared))
    except ValueError as exc:
        raise PublishError(f"schema.json: python_version: {exc}", field="schema.json") from None

    sources = {"score.py": (folder / "score.py").read_bytes()}
    bundle_dir, bundle_zip = folder / "bundle", folder / "bundle.zip"
    if bundle_dir.is_dir():
        sources.update({f"bundle/{p.relative_to(bundle_dir).as_posix()}": p.read_bytes()
                        for p in sorted(bundle_dir.rglob("*.py")) if p.is_file()})
    elif bundle_zip.is_file():
        try:
            zipped = bundle_mod.read_zip(bundle_zip.read_bytes())
        except (zipfile.BadZipFile, OSError, ValueError):
            raise PublishError(f"{bundle_zip}: not a zip file") from None
        sources.update({f"bundle/{n}": d for n, d in zipped.items() if n.endswith(".py")})

    version = declared or _detected(sources)
    bundle_files = frozenset(n[len("bundle/"):] for n in sources if n.startswith("bundle/"))
    migrated, diffs, remaining = {}, {}, []
    for name, data in sources.items():
        original = python2.decode(data)[0]
        text = original
        if version == python2.PY2:
            label = "score.py" if name == "score.py" else "Script Bundle/" + name[len("bundle/"):]
            text = _with_div_helper(python2.decode(python2.convert(data, label, bundle_files).source)[0])
        modern = classic_apis.modernize(text)
        remaining += [str(u) for u in classic_apis.scan(modern, name)]
        if modern != original:
            migrated[name] = modern
            diffs[name] = "".join(difflib.unified_diff(original.splitlines(True), modern.splitlines(True),
                                                       f"{folder.name}/{name}", f"{out.name}/{name}"))

    shutil.copytree(folder, out, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name, text in migrated.items():
        if name.startswith("bundle/") and bundle_zip.is_file() and not bundle_dir.is_dir():
            continue
        (out / name).write_text(text, encoding="utf-8")
    if bundle_zip.is_file() and not bundle_dir.is_dir() and any(n.startswith("bundle/") for n in migrated):
        files = bundle_mod.read_zip(bundle_zip.read_bytes())
        files.update({n[len("bundle/"):]: t.encode("utf-8") for n, t in migrated.items() if n.startswith("bundle/")})
        (out / "bundle.zip").write_bytes(bundle_mod.write_zip(sorted(files.items())))
    if version == python2.PY2 and isinstance(schema, dict):
        schema["python_version"] = "3"
        (out / "schema.json").write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2) + b"\n")
    return Migration(out, version, diffs, remaining)


def _detected(sources: dict) -> str:
    score = sources["score.py"]
    others = [d for n, d in sources.items() if n != "score.py"]
    bundle = bundle_mod.write_zip([(f"m{i}.py", d) for i, d in enumerate(others)]) if others else None
    return python2.PY2 if python2.prepare_sources(score, bundle, None).conversion else python2.PY3


def _plain_division(source: str) -> str:
    """``__py2_div__(a, b)`` as ``a // b`` where both sides are known integers, ``a / b`` where
    one is a float literal or ``float(...)``; the others are left for :func:`_with_div_helper`."""
    import libcst as cst

    try:
        module = cst.parse_module(source)
        ints = python2._integer_names(ast.parse(source))
    except (cst.ParserSyntaxError, SyntaxError):
        return source

    def kind(expr) -> str | None:
        node = ast.parse(module.code_for_node(expr).strip(), mode="eval").body
        if python2._is_int(node, ints):
            return "int"
        if (isinstance(node, ast.Constant) and type(node.value) is float) or \
                (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float"):
            return "float"
        return None

    class Plain(cst.CSTTransformer):
        def leave_Call(self, original, updated):
            if not (isinstance(updated.func, cst.Name) and updated.func.value == python2.DIV_NAME and len(updated.args) == 2):
                return updated
            a, b = (arg.value for arg in updated.args)
            kinds = {kind(a), kind(b)}
            if kinds == {"int"}:
                op = cst.FloorDivide()
            elif "float" in kinds:
                op = cst.Divide()
            else:
                return updated
            return cst.BinaryOperation(left=a, operator=op, right=b, lpar=[cst.LeftParen()], rpar=[cst.RightParen()])

    return module.visit(Plain()).code


def _with_div_helper(source: str) -> str:
    """A converted file that still calls ``__py2_div__`` gets its definition (the runtime provides
    it when serving; a migrated file must stand alone), after the docstring and future imports."""
    source = _plain_division(source)
    helpers = [(name, fn) for name, fn in ((py2_runtime.DIV_NAME, py2_runtime.py2_div),
                                           (py2_runtime.IDIV_NAME, py2_runtime.py2_idiv)) if name in source]
    if not helpers:
        return source
    helper = "import numbers\nimport sys\n\n\n"
    for name, fn in helpers:
        helper += (f"# scorepub migrate: Python 2's \"{'/=' if name == py2_runtime.IDIV_NAME else '/'}\"; "
                   "where both sides are known integers, write \"//\"\n"
                   + inspect.getsource(fn).replace(f"def {fn.__name__}(", f"def {name}(") + "\n\n")
    helper += inspect.getsource(py2_runtime._integer) + "\n\n"
    lines = source.splitlines(True)
    at = 0
    try:
        tree = ast.parse(source)
        for node in tree.body:
            is_doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            if is_doc or (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                at = node.end_lineno
            else:
                break
    except SyntaxError:
        pass
    return "".join(lines[:at]) + ("\n" if at else "") + helper + "".join(lines[at:])
