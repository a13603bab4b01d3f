"""Python 2.7 scripts: detected and converted to Python 3 at publish time.

Classic's "Execute Python Script" defaulted to Anaconda 4.0 / Python 2.7.11. This server has
no Python 2, so 2.7 sources (score.py and the bundle's modules) are converted once, at publish,
with fissix, the maintained fork of lib2to3 (2to3's fixers give plain Python 3, where
python-modernize would add a dependency on ``six``). A few fixers are ours, to keep Python 2
meaning where 2to3 alone changes it:

- ``/`` between integers floors (``35 / 10 == 3``): ``a / b`` becomes ``__py2_div__(a, b)``
  (:func:`py2_div`, put into builtins by the runtime) unless the file imports ``division``
  from ``__future__``;
- leading tabs count to the next multiple of 8 columns, as Python 2's tokenizer did;
- ``d.keys()`` / ``.items()`` / ``.values()`` become lists (2to3), except when a method other
  than a list's is called on them (``df.keys().tolist()`` keeps the pandas Index).

Conversion keeps line numbers nearly always; where a fixer adds a line (``from functools
import reduce``), :attr:`Converted.line_map` maps each converted line back to the original.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import io
import itertools
import threading

# what converted code calls at run time, and the line helpers tracebacks share: the sandbox's
from scorepub_sandbox.py2_runtime import DIV_NAME, IDIV_NAME, decode, original_line, py2_div, py2_idiv, source_lines

from .errors import ScriptError

__all__ = ["PY2", "PY3", "VERSION_LABELS", "DIV_NAME", "IDIV_NAME", "MAX_CONVERT_BYTES", "py2_div", "py2_idiv",
           "Converted", "normalize_version", "decode", "py3_error", "parses_as_py2", "expand_indentation", "convert",
           "source_lines", "original_line", "ambiguities", "ExperimentSources", "prepare_sources"]

PY2, PY3 = "2.7", "3"
# The classic module's "Python Version" labels, and our short forms.
VERSION_LABELS = {
    "2.7": PY2, "Anaconda 2.0/Python 2.7.7": PY2, "Anaconda 4.0/Python 2.7.11": PY2,
    "3": PY3, "Anaconda 4.0/Python 3.5": PY3,
}
# fissix takes about a second and ~1 GB per MB of source: a publish stays within minutes
MAX_CONVERT_BYTES = 4 << 20
_LIST_METHODS = {"sort", "append", "extend", "insert", "remove", "pop", "reverse", "index", "count"}


@dataclasses.dataclass(frozen=True)
class Converted:
    source: bytes
    line_map: list[int] | None  # original line number for each converted line (1-based); None: same lines


def normalize_version(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return VERSION_LABELS[value]
    except KeyError:
        raise ValueError(f"must be one of {', '.join(repr(v) for v in VERSION_LABELS)}") from None


def py3_error(source: bytes, filename: str) -> SyntaxError | ValueError | None:
    """Why ``source`` does not compile as Python 3, or None."""
    try:
        compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return exc
    except (RecursionError, MemoryError):  # absurdly nested code: refused by the script check
        return SyntaxError("too deeply nested to compile")
    return None


def parses_as_py2(source: bytes) -> bool:
    """Whether Python 2.7's grammar (fissix's, with print and exec statements) accepts it."""
    from fissix import pygram, pytree
    from fissix.pgen2 import driver, parse, tokenize as py2_tokenize

    text, encoding = decode(source)
    if encoding == "latin-1" and b"coding" not in source[:200]:
        return False  # neither UTF-8 nor declared: Python 2 refused non-ASCII without a cookie too
    grammars = [pygram.python_grammar]
    if "print_function" in text:  # the grammar without the print statement
        grammars.append(pygram.python_grammar_no_print_statement)
    for grammar in grammars:
        try:
            driver.Driver(grammar, convert=pytree.convert).parse_string(_with_newline(text))
            return True
        except (parse.ParseError, py2_tokenize.TokenError, IndentationError, SyntaxError, RecursionError,
                MemoryError):
            continue
    return False


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def expand_indentation(text: str) -> str:
    """Leading tabs expanded to 8-column stops (Python 2's rule; Python 3 refuses a mix with
    TabError), leaving lines that start inside a multi-line string alone."""
    from fissix.pgen2 import token, tokenize as py2_tokenize

    inside: set[int] = set()
    try:
        for kind, _, (srow, _), (erow, _), _ in py2_tokenize.generate_tokens(io.StringIO(text).readline):
            if kind == token.STRING and erow > srow:
                inside.update(range(srow + 1, erow + 1))
    except (py2_tokenize.TokenError, IndentationError):
        pass
    lines = text.splitlines(keepends=True)
    for n, line in enumerate(lines, 1):
        body = line.lstrip(" \t")
        indent = line[:len(line) - len(body)]
        if n not in inside and "\t" in indent:
            lines[n - 1] = indent.expandtabs(8) + body
    return "".join(lines)


def convert(source: bytes, filename: str, bundle_files: frozenset = frozenset()) -> Converted:
    """``source`` (Python 2.7) as Python 3; raise ScriptError naming the line if it cannot be.
    ``bundle_files`` (the bundle's paths) tell implicit relative imports inside its packages."""
    from fissix.pgen2.parse import ParseError

    text, encoding = decode(source)
    original = _with_newline(text)
    prepared = expand_indentation(original)
    try:
        with _TOOL_LOCK:  # one tool per process; its fixers keep per-file state
            tool = _tool()
            tool.bundle_files = bundle_files
            converted = str(tool.refactor_string(prepared, filename))
    except ParseError as exc:
        line = exc.context[1][0] if exc.context else "?"
        raise ScriptError(f"{filename}:{line}: not valid Python 2.7 either ({exc.msg}: {exc.value!r})") from None
    except Exception as exc:  # noqa: BLE001 - the converter's own failures name no line
        raise ScriptError(f"{filename}: cannot be converted from Python 2.7 ({type(exc).__name__}: {exc})") from None
    if "\r\n" in original:  # lines the fixers add end in "\n": keep the file's own line ends
        converted = converted.replace("\r\n", "\n").replace("\n", "\r\n")
    if not text.endswith("\n") and converted.endswith("\n"):
        converted = converted[:-1]
    try:
        data = converted.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        data = converted.encode("utf-8")
    error = py3_error(data, filename)
    if error is not None:
        raise ScriptError(f"{filename}:{getattr(error, 'lineno', None) or '?'}: converted from Python 2.7, "
                          f"but the result does not compile ({getattr(error, 'msg', error)})")
    return Converted(data, _line_map(original, converted))


def _line_map(original: str, converted: str) -> list[int] | None:
    a, b = source_lines(original), source_lines(converted)
    if len(a) == len(b):
        return None
    mapping = [0] * len(b)
    # autojunk keeps this near-linear on files of many identical lines
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b).get_opcodes():
        for j in range(j1, j2):
            # equal and replaced lines map one to one; an inserted line to the next original one
            mapping[j] = min(i1 + (j - j1), max(i2 - 1, i1), len(a) - 1) + 1 if tag != "insert" else min(i1, len(a) - 1) + 1
    return mapping


_TOOL_LOCK = threading.Lock()


@functools.cache
def _tool():
    """A RefactoringTool with 2to3's default fixers, ``fix_dict`` and ``fix_import`` replaced by
    ours, and our division fixer added. fissix's own ``fix_sorted`` (not a 2to3 fixer) is left
    out: its pattern takes minutes on long attribute chains, and ``sorted(cmp=...)`` is rare."""
    from fissix.refactor import RefactoringTool, get_fixers_from_package

    ours = _fixer_classes()
    replaced = {".fix_dict", ".fix_import", ".fix_sorted"}
    names = [n for n in get_fixers_from_package("fissix.fixes") if not n.endswith(tuple(replaced))]

    class Tool(RefactoringTool):
        bundle_files: frozenset = frozenset()

        def get_fixers(self):
            pre, post = super().get_fixers()
            for cls in ours:
                fixer = cls(self.options, self.fixer_log)
                fixer.tool = self
                (pre if fixer.order == "pre" else post).append(fixer)
            return pre, post

    return Tool(names)


@functools.cache
def _fixer_classes():
    """Our fixers (defined on first use: fissix is imported only when a file is converted)."""
    from fissix import fixer_base, pytree
    from fissix.fixer_util import Call, Comma, Name
    from fissix.fixes.fix_dict import FixDict
    from fissix.fixes.fix_import import FixImport
    from fissix.pgen2 import token
    from fissix.pygram import python_symbols as syms

    class FixDictKeepingMethods(FixDict):
        """2to3's fix_dict, but ``x.keys().tolist()`` (a pandas Index) is not made a list."""

        def transform(self, node, results):
            tail = results["tail"]
            if tail and tail[0].type == syms.trailer and len(tail[0].children) == 2 and \
                    tail[0].children[0].type == token.DOT and tail[0].children[1].value not in _LIST_METHODS:
                return None
            return super().transform(node, results)

    class FixImportInBundle(FixImport):
        """``import sibling`` inside a bundle package becomes ``from . import sibling``; the
        bundle's root is on sys.path, so its top-level modules import each other as before."""

        def probably_a_local_import(self, imp_name):
            if imp_name.startswith(".") or not self.filename.startswith("Script Bundle/"):
                return False
            folder = self.filename[len("Script Bundle/"):].rpartition("/")[0]
            files = self.tool.bundle_files
            if not folder or f"{folder}/__init__.py" not in files:
                return False
            base = f"{folder}/{imp_name.split('.', 1)[0]}"
            return f"{base}.py" in files or f"{base}/__init__.py" in files

    class FixDivision(fixer_base.BaseFix):
        """``a / b`` -> ``__py2_div__(a, b)``; ``a /= b`` -> ``a = __py2_idiv__(a, b)`` (a target
        with a subscript is evaluated twice: ``a[f()] /= 2`` calls ``f`` twice)."""

        BM_compatible = False
        order = "post"
        _accept_type = None

        def start_tree(self, tree, filename):
            super().start_tree(tree, filename)
            # any form: "from __future__ import (division,\n print_function)" too
            self.true_division = "division" in tree.future_features or any(
                node.type == syms.import_from and str(node.children[1]).strip() == "__future__"
                and "division" in str(node) for node in itertools.islice(tree.pre_order(), 5000))

        def match(self, node):
            if self.true_division:
                return False
            if node.type == syms.term:
                return any(ch.type == token.SLASH for ch in node.children)
            return node.type == syms.expr_stmt and len(node.children) == 3 and \
                node.children[1].type == token.SLASHEQUAL

        def transform(self, node, results):
            if node.type == syms.expr_stmt:
                target, op, value = node.children
                left = target.clone()
                left.prefix = ""
                call = Call(Name(IDIV_NAME), [left, Comma(), _operand(value, op)], prefix=value.prefix)
                return pytree.Node(syms.expr_stmt, [target.clone(), pytree.Leaf(token.EQUAL, "=", prefix=op.prefix),
                                                    call], prefix=node.prefix)
            kids = node.children
            first = kids[0].clone()
            first.prefix = ""
            acc = [first]
            for op, rhs in zip(kids[1::2], kids[2::2]):
                if op.type == token.SLASH:
                    left = acc[0] if len(acc) == 1 else pytree.Node(syms.term, acc)
                    acc = [Call(Name(DIV_NAME), [left, Comma(), _operand(rhs, op)])]
                else:
                    acc += [op.clone(), rhs.clone()]
            new = acc[0] if len(acc) == 1 else pytree.Node(syms.term, acc)
            new.prefix = node.prefix
            return new

    def _operand(rhs, op):
        """The right operand as a call argument, keeping any line continuation the operator had."""
        new = rhs.clone()
        keep = op.prefix if "\n" in op.prefix else ""
        new.prefix = keep + (rhs.prefix if rhs.prefix else " ")
        return new

    return FixDictKeepingMethods, FixImportInBundle, FixDivision


# -- warnings for scripts that compile as both ------------------------------------------------

def ambiguities(source: bytes, filename: str) -> list[str]:
    """Lines whose meaning differs between Python 2.7 and 3, in a file that compiles as both:
    ``/`` between operands known to be integers, and ``map()``/``zip()``/``filter()``/
    ``.keys()``/``.values()``/``.items()`` used as lists (indexed, measured, sorted or added)."""
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    warn_division = not any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
                            any(a.name == "division" for a in n.names) for n in ast.walk(tree))
    try:
        return _ambiguities(tree, filename, warn_division)
    except (RecursionError, MemoryError):  # absurdly nested code: no warning rather than a crash
        return []


def _ambiguities(tree, filename: str, division: bool) -> list[str]:
    found: list[tuple[int, str]] = []
    ints = _integer_names(tree)
    for node in ast.walk(tree):
        if division and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and \
                _is_int(node.left, ints) and _is_int(node.right, ints):
            found.append((node.lineno, f"'{ast.unparse(node)}' divides integers: it floors in Python 2.7, not in 3"))
        elif division and isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Div) and \
                _is_int(node.target, ints) and _is_int(node.value, ints):
            found.append((node.lineno, f"'{ast.unparse(node)}' divides integers: it floors in Python 2.7, not in 3"))
        elif isinstance(node, ast.Subscript) and _lazy(node.value):
            found.append((node.lineno, f"'{ast.unparse(node.value)}' is indexed: a list in Python 2.7, not in 3"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len" and \
                node.args and _lazy(node.args[0]):
            found.append((node.lineno, f"len({ast.unparse(node.args[0])}): a list in Python 2.7, not in 3"))
        elif isinstance(node, ast.Attribute) and node.attr in _LIST_METHODS and _lazy(node.value):
            found.append((node.lineno, f"'{ast.unparse(node.value)}.{node.attr}': a list in Python 2.7, not in 3"))
    return [f"{filename}:{line}: {text}" for line, text in sorted(set(found))]


def _lazy(node) -> bool:
    """A call that returned a list in Python 2 and an iterator or a view in 3."""
    if not isinstance(node, ast.Call):
        return False
    if isinstance(node.func, ast.Name):
        return node.func.id in ("map", "zip", "filter")
    return isinstance(node.func, ast.Attribute) and node.func.attr in ("keys", "values", "items") and not node.args


def _integer_names(tree) -> set[str]:
    """Names only ever bound to integers: loop variables over range(), and assignments of
    integer expressions (a small fixed point, so ``n = len(x); h = n + 1`` counts both)."""
    bindings: dict[str, list] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    bindings.setdefault(t.id, []).append(node.value)
                else:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            bindings.setdefault(n.id, []).append(None)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and isinstance(node.target, ast.Name):
            bindings.setdefault(node.target.id, []).append(node if isinstance(node, ast.AugAssign) else node.value)
        elif isinstance(node, (ast.For, ast.comprehension)):
            ranged = isinstance(node.iter, ast.Call) and isinstance(node.iter.func, ast.Name) and \
                node.iter.func.id in ("range", "xrange")
            for n in ast.walk(node.target):
                if isinstance(n, ast.Name):
                    bindings.setdefault(n.id, []).append("range" if ranged and n is node.target else None)
        elif isinstance(node, (ast.FunctionDef, ast.Lambda, ast.AsyncFunctionDef)):
            for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                bindings.setdefault(a.arg, []).append(None)
    ints: set[str] = set()
    changed, passes = True, 0
    while changed and passes < 8:  # a few passes find the chains real scripts have
        changed, passes = False, passes + 1
        for name, values in bindings.items():
            if name in ints:
                continue
            if all(v == "range" or (isinstance(v, ast.AugAssign) and not isinstance(v.op, ast.Div)
                                    and _is_int(v.value, ints))
                   or (isinstance(v, ast.expr) and _is_int(v, ints)) for v in values):
                ints.add(name)
                changed = True
    return ints


def _is_int(node, ints: set[str]) -> bool:
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    if isinstance(node, ast.Name):
        return node.id in ints
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id in ("len", "int") and not node.keywords
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)):
        return _is_int(node.left, ints) and _is_int(node.right, ints)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return _is_int(node.operand, ints)
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
        return node.value.attr == "shape"
    return False


# -- a whole experiment: score.py and the bundle's modules --------------------------------------

@dataclasses.dataclass
class ExperimentSources:
    """score.py and the bundle as they will run, what was published, and what was done."""

    score_py: bytes
    bundle: bytes | None
    originals: dict  # artifact member name -> bytes as published (only when something was converted)
    conversion: dict | None  # the conversion record (conversion.json), None for Python 3
    warnings: list[str]


def prepare_sources(score_py: bytes, bundle: bytes | None, declared: str | None) -> ExperimentSources:
    """Decide the experiment's Python (declared, else 2.7 when some file compiles only as 2.7)
    and convert every source to Python 3 if it is 2.7. Classic ran score.py and its bundle in
    one interpreter, so one 2.7-only file makes the whole experiment 2.7."""
    from .bundle import read_zip

    bundle_files = read_zip(bundle) if bundle is not None else {}
    modules = {n: d for n, d in bundle_files.items() if n.endswith(".py")}
    files = {"score.py": score_py, **{f"Script Bundle/{n}": data for n, data in modules.items()}}
    version, reason = declared, None
    if version is None:
        for name, data in files.items():
            error = py3_error(data, name)
            if error is not None and parses_as_py2(data):
                version = PY2
                reason = f"{name}:{getattr(error, 'lineno', None) or '?'} does not compile as Python 3 " \
                         f"({getattr(error, 'msg', error)}) but parses as Python 2.7"
                break
    if version is None:
        for name, data in files.items():
            module, line = _python2_import(data, name)
            if module:
                version, reason = PY2, f"{name}:{line} imports {module}, which only Python 2 has"
                break
    if version != PY2:
        notes = [] if version == PY3 else [w for name, data in files.items() for w in ambiguities(data, name)]
        warnings = [_ambiguity_line(notes)] if notes else []
        return ExperimentSources(score_py, bundle, {}, None, warnings)
    total = sum(len(d) for d in files.values())
    if total > MAX_CONVERT_BYTES:
        raise ScriptError(f"Python 2.7: score.py and the bundle's modules hold {total} bytes of source; at most "
                          f"{MAX_CONVERT_BYTES} are converted at publish (convert a vendored library with "
                          "'scorepub migrate' and publish the result)")
    converted, record, warnings = {}, {}, []
    paths = frozenset(bundle_files)
    for name, data in files.items():
        try:
            result = convert(data, name, paths)
        except ScriptError:
            if name == "score.py":
                raise
            warnings.append(f"{name}: left as it is: it is not valid Python 2.7 either")
            continue
        if result.source != data:
            converted[name] = result.source
            record[name] = {"line_map": result.line_map}
    from fissix import __version__ as fissix_version

    changed = ", ".join(record) or "nothing needed changing"
    if declared:
        warnings.insert(0, f"Python 2.7 (schema.json's python_version): converted to Python 3: {changed}")
    else:
        warnings.insert(0, f"taken as Python 2.7: {reason}; converted to Python 3: {changed} "
                           "(set \"python_version\" in schema.json to say so)")
    originals = {}
    if "score.py" in converted:
        originals["original/score.py"] = score_py
    new_bundle = bundle
    if any(n != "score.py" for n in converted):
        from .bundle import write_zip

        originals["original/bundle.zip"] = bundle
        members = dict(bundle_files)
        for name, data in converted.items():
            if name != "score.py":
                members[name[len("Script Bundle/"):]] = data
        new_bundle = write_zip(sorted(members.items()))
    conversion = {"python_version": PY2, "declared": declared is not None, "converter": f"fissix {fissix_version}",
                  "files": record}
    return ExperimentSources(converted.get("score.py", score_py), new_bundle, originals, conversion, warnings)


# standard modules that Python 3 renamed or removed (2to3's fix_imports and fix_urllib)
PY2_ONLY_MODULES = frozenset({
    "urllib2", "urlparse", "cPickle", "cStringIO", "StringIO", "ConfigParser", "Queue", "HTMLParser", "httplib",
    "__builtin__", "Tkinter", "tkMessageBox", "commands", "cookielib", "Cookie", "xmlrpclib", "SocketServer",
    "BaseHTTPServer", "SimpleHTTPServer", "copy_reg", "repr", "anydbm", "dbhash", "thread", "dummy_thread",
    "htmlentitydefs", "robotparser", "UserDict", "UserList", "UserString", "markupbase", "exceptions", "sets",
})


def _python2_import(source: bytes, filename: str) -> tuple[str | None, int]:
    """The first standard module only Python 2 has that ``source`` imports, and its line."""
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None, 0
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
        for name in names:
            if name.split(".")[0] in PY2_ONLY_MODULES:
                return name.split(".")[0], node.lineno
    return None, 0


def _ambiguity_line(notes: list[str]) -> str:
    more = f" (and {len(notes) - 1} more)" if len(notes) > 1 else ""
    return (f"{notes[0]}{more}; classic's default was Python 2.7: set \"python_version\" in schema.json "
            "to \"2.7\" or \"3\" to say which this script was written for")
