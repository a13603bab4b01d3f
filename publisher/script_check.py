"""Static checks of ``score.py`` at publish time (contract.md, "The script").

The worker checks the real signature again when it loads the script; a module whose
``azureml_main`` is bound by an import or assignment can only be checked there and by the
publish-time smoke call.
"""
from __future__ import annotations

import ast

from .errors import ScriptError


def check_script(source: bytes, n_ports: int, filename: str = "score.py") -> None:
    try:
        tree = ast.parse(source, filename=filename)
        compile(tree, filename, "exec")
    except SyntaxError as exc:
        where = f"{filename}:{exc.lineno}" if exc.lineno else filename
        raise ScriptError(f"{where}: {type(exc).__name__}: {exc.msg}") from None
    except ValueError as exc:  # e.g. a NUL byte
        raise ScriptError(f"{filename}: cannot be compiled: {exc}") from None
    func = None
    bound_otherwise = False
    for node in _module_level(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "azureml_main":
            func = node
        elif _binds_name(node, "azureml_main"):
            bound_otherwise, func = True, None
    if func is None and not bound_otherwise:
        raise ScriptError(f"{filename}: defines no function azureml_main at module level")
    if func is None:
        return
    if isinstance(func, ast.AsyncFunctionDef):
        raise ScriptError(f"{filename}:{func.lineno}: azureml_main must be a plain function, not async")
    problem = signature_problem(func.args, n_ports)
    if problem:
        raise ScriptError(f"{filename}:{func.lineno}: azureml_main {problem}")


def signature_problem(args: ast.arguments, n_ports: int) -> str | None:
    positional = len(args.posonlyargs) + len(args.args)
    required = positional - len(args.defaults)
    kw_required = [a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is None]
    if kw_required:
        return f"has keyword-only parameter(s) without defaults ({', '.join(kw_required)}); it is called positionally"
    if args.vararg is None and positional < n_ports:
        return f"accepts {positional} positional argument(s) but the schema declares {n_ports} input port(s)"
    if required > n_ports:
        return f"requires {required} positional argument(s) but the schema declares {n_ports} input port(s)"
    return None


def _module_level(body):
    """Statements that run at module level, including those inside top-level if/try/with blocks."""
    for node in body:
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody"):
                yield from _module_level(getattr(node, block, []) or [])
            for handler in getattr(node, "handlers", []):
                yield from _module_level(handler.body)


def _binds_name(node, name) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return any((a.asname or a.name.split(".")[0]) == name for a in node.names)
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
    if isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        return isinstance(node.target, ast.Name) and node.target.id == name
    if isinstance(node, ast.ClassDef):
        return node.name == name
    return False
