"""Find, and rewrite, the pandas 0.18 / numpy 1.11 APIs a classic script uses (LibCST).

Azure ML Studio (classic) ran pandas 0.18 and numpy 1.11; scorepub serves scripts on current
pandas and numpy. ``scorepub_sandbox/classic_compat.py`` keeps old scripts running; this module
tells the publisher which old APIs a script uses (``scan``) and offers a modern version of the
source (``modernize``): a syntax-tree rewrite that leaves every other byte (comments, layout)
as it was. Neither imports pandas or numpy: the analysis is purely static.

Receivers. Unambiguous names (``.ix[``, ``.as_matrix(``, ``pd.rolling_mean``, ``np.float``...)
are reported wherever they occur. Names that plain Python objects have too (``.sort(``,
``.append(``, ``.valid()``...) are reported only when the call uses a keyword only pandas had
(``columns=``, ``ascending=``, ``inplace=``, ``na_position=``, ``ignore_index=``,
``verify_integrity=``; not ``axis=``/``kind=``, which ``ndarray.sort`` takes) or when the receiver
is known to hold a DataFrame or Series. "Known" comes from a simple, flow-insensitive-to-branches
walk of each scope in source order: the parameters of ``azureml_main``; names assigned from
``pd.DataFrame(...)``, ``pd.Series(...)``, ``pd.read_*(...)``, ``pd.concat``, ``pd.merge`` (and a
few other frame constructors); and names assigned from a subscript, method call, attribute or
arithmetic of a known name (``df = dataframe1[['a']]``, ``df2 = df.copy()``, ``s = df.a``). Any
other assignment to a name forgets it (``rows = []`` makes ``rows.append(...)`` a list's).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import libcst as cst
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider

from scorepub_sandbox.classic_freq import modern_freq

__all__ = ["Use", "scan", "modernize"]

MIGRATE_IX = "# scorepub migrate: was .ix; check positional use"


@dataclass(frozen=True)
class Use:
    filename: str
    line: int
    old: str
    new: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}: {self.old} → {self.new}"


def scan(source: str, filename: str = "score.py") -> list[Use]:
    """The classic APIs `source` uses, one Use per line and API, in source order ([] when the
    source does not parse)."""
    analysis = _analyse(source)
    if analysis is None:
        return []
    seen, uses = set(), []
    for line, old, new in analysis.reports:
        if (line, old) not in seen:
            seen.add((line, old))
            uses.append(Use(filename, line, old, new))
    return sorted(uses, key=lambda u: u.line)


def modernize(source: str) -> str:
    """`source` rewritten to modern pandas/numpy (unchanged when it does not parse). Uses that have
    no safe mechanical rewrite are left as they are (scan still reports them)."""
    analysis = _analyse(source)
    if analysis is None:
        return source
    return analysis.wrapper.module.visit(_Rewriter(analysis)).code


# -- helpers ------------------------------------------------------------------------------------------

_EMPTY = cst.Module(body=[])


def _code(node: cst.CSTNode) -> str:
    return _EMPTY.code_for_node(node)


def _atom(node: cst.BaseExpression) -> str:
    """Source of node, parenthesised unless it can take a trailing .attr as it is."""
    code = _code(node)
    if node.lpar or isinstance(node, (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.List, cst.Dict,
                                      cst.SimpleString, cst.ConcatenatedString)):
        return code
    return f"({code})"


def _dotted(node) -> str | None:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr.value}"
    return None


def _split_args(call: cst.Call):
    """(positional args, {keyword: arg}) or None when the call uses * or **."""
    pos, kw = [], {}
    for arg in call.args:
        if arg.star:
            return None
        if arg.keyword is None:
            pos.append(arg)
        else:
            kw[arg.keyword.value] = arg
    return pos, kw


def _is_true(arg) -> bool:
    return arg is not None and isinstance(arg.value, cst.Name) and arg.value.value == "True"


def _const(arg) -> str | None:
    """The value of a simple literal argument (strings unquoted), else None."""
    if arg is None:
        return None
    v = arg.value
    if isinstance(v, cst.SimpleString):
        return v.evaluated_value if isinstance(v.evaluated_value, str) else None
    if isinstance(v, (cst.Integer, cst.Name)):
        return v.value
    return None


def _kw(name: str, value: str) -> cst.Arg:
    return cst.Arg(value=cst.parse_expression(value), keyword=cst.Name(name),
                   equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))


def _with_args(call: cst.Call, args: list[cst.Arg]) -> cst.Call:
    """call with these args, commas fixed (the last keeps the original last one's comma)."""
    last = call.args[-1].comma if call.args else cst.MaybeSentinel.DEFAULT
    fixed = []
    for i, a in enumerate(args):
        if i < len(args) - 1:
            comma = a.comma if isinstance(a.comma, cst.Comma) else cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
        else:
            comma = last
        fixed.append(a.with_changes(comma=comma))
    return call.with_changes(args=fixed)


def _keywordise(call: cst.Call, names: tuple, start: int) -> cst.Call:
    """Positional args from index `start` become keyword args named by `names`."""
    out = []
    for i, a in enumerate(call.args):
        if a.keyword is None and not a.star and i >= start:
            a = a.with_changes(keyword=cst.Name(names[i - start]),
                               equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")))
        out.append(a)
    return call.with_changes(args=out)


def _rename(call: cst.Call, attr: str) -> cst.Call:
    return call.with_changes(func=call.func.with_changes(attr=cst.Name(attr)))


def _has_int(node) -> bool:
    found = []

    class V(cst.CSTVisitor):
        def visit_Integer(self, n):
            found.append(n)

    node.visit(V())
    return bool(found)


# -- what pandas objects flow where --------------------------------------------------------------------

_FRAME_MAKERS = {"DataFrame", "concat", "merge", "merge_ordered", "merge_asof", "pivot_table", "crosstab",
                 "get_dummies", "melt", "read_csv", "read_table", "read_excel", "read_json", "read_sql",
                 "read_sql_query", "read_sql_table", "read_pickle", "read_hdf", "read_parquet", "read_fwf",
                 "read_stata", "read_sas", "read_feather", "read_orc", "read_clipboard"}
_NOT_PANDAS = {"values", "index", "columns", "shape", "dtypes", "dtype", "size", "ndim", "empty", "name",
               "tolist", "to_list", "to_dict", "to_numpy", "as_matrix", "to_records", "to_json", "to_csv",
               "to_string", "to_html", "to_excel", "to_pickle", "iterrows", "itertuples", "items", "iteritems",
               "keys", "get_value", "plot", "hist", "str", "dt", "cat", "loc", "iloc", "ix", "at",
               "iat", "lookup", "nonzero", "item", "nunique", "any", "all", "equals", "info", "memory_usage", "unique",
               "searchsorted", "ravel", "get_values", "argmax", "argmin"}
_CHANGES_KIND = {"sum", "mean", "median", "min", "max", "std", "var", "count", "prod", "quantile", "mode", "idxmax",
                 "idxmin", "apply", "agg", "aggregate", "transform", "groupby", "value_counts", "describe",
                 "corr", "cov", "squeeze", "stack", "unstack", "pivot", "to_frame", "resample", "rolling", "ewm"}
_FRAME_KW = {"columns", "ascending", "inplace", "na_position"}
_APPEND_KW = {"ignore_index", "verify_integrity"}


class _Scopes:
    """Name -> 'frame' | 'series' | 'pandas' | 'row' (a dict literal) for the scope being walked."""

    def __init__(self):
        self.stack = [{}]

    def get(self, name):
        return self.stack[-1].get(name)

    def set(self, name, kind):
        if kind:
            self.stack[-1][name] = kind
        else:
            self.stack[-1].pop(name, None)

    def push(self):
        self.stack.append(dict(self.stack[-1]))

    def pop(self):
        self.stack.pop()


# -- the rules ------------------------------------------------------------------------------------------

_NP_RENAMES = {  # numpy 1.11 name -> modern code ({np} is the numpy alias)
    "float": "float", "int": "int", "object": "object", "str": "str", "unicode": "str", "complex": "complex",
    "NaN": "{np}.nan", "NAN": "{np}.nan", "Inf": "{np}.inf", "Infinity": "{np}.inf", "infty": "{np}.inf",
    "PINF": "{np}.inf", "NINF": "-{np}.inf", "PZERO": "0.0", "NZERO": "-0.0", "float_": "{np}.float64",
    "complex_": "{np}.complex128", "string_": "{np}.bytes_", "unicode_": "{np}.str_", "int0": "{np}.intp",
    "uint0": "{np}.uintp", "bool8": "{np}.bool_", "object0": "{np}.object_", "str0": "{np}.str_",
    "bytes0": "{np}.bytes_", "void0": "{np}.void", "cfloat": "{np}.complex128", "singlecomplex": "{np}.complex64",
    "longfloat": "{np}.longdouble", "longcomplex": "{np}.clongdouble", "clongfloat": "{np}.clongdouble",
    "product": "{np}.prod", "cumproduct": "{np}.cumprod", "alltrue": "{np}.all", "sometrue": "{np}.any",
    "round_": "{np}.round", "mat": "{np}.asmatrix", "trapz": "{np}.trapezoid", "in1d": "{np}.isin",
    "rank": "{np}.ndim", "issubclass_": "issubclass", "math": "{math}", "loads": "{pickle}.loads",
}
_NP_CALLS = {"asscalar": "{0}.item()", "msort": "{np}.sort({0}, axis=0)", "alen": "len({0})",
             "asfarray": "{np}.asarray({0}, dtype=float)"}
_WINDOW_STATS = ("mean", "sum", "std", "var", "min", "max", "median", "skew", "kurt")
_PD_RENAMES = {"scatter_matrix": "{pd}.plotting.scatter_matrix", "ordered_merge": "{pd}.merge_ordered",
               "TimeGrouper": "{pd}.Grouper"}
_OLD_MODULES = {  # 0.18 module -> the modern module holding its names (None: no mechanical rewrite)
    "pandas.tools.plotting": "pandas.plotting", "pandas.tools.merge": "pandas", "pandas.tools.pivot": "pandas",
    "pandas.tools.tile": "pandas", "pandas.tseries.tools": "pandas", "pandas.util.testing": "pandas.testing",
    "pandas.core.datetools": "pandas.tseries.offsets", "pandas.stats.moments": None, "pandas.tools": "pandas",
    "sklearn.externals.joblib": "joblib", "pandas.tools.rplot": None, "pandas.parser": None,
}
_MODULE_NEW = {  # what scan offers for a module that has no mechanical rewrite
    "pandas.stats.moments": "x.rolling(...) / x.ewm(...)",
    "pandas.tools.rplot": "seaborn.FacetGrid (or plt.subplots + ax.scatter/ax.plot per group)",
    "pandas.parser": "pandas.errors (CParserError is ParserError)",
}
_MOVED_NAMES = {  # (0.18 module, name) -> (module that has it now, its name there)
    ("pandas.io.json", "json_normalize"): ("pandas", "json_normalize"),
    ("pandas.io.common", "EmptyDataError"): ("pandas.errors", "EmptyDataError"),
    ("pandas.io.common", "CParserError"): ("pandas.errors", "ParserError"),
    ("pandas.io.common", "DtypeWarning"): ("pandas.errors", "DtypeWarning"),
    ("pandas.io.common", "ParserWarning"): ("pandas.errors", "ParserWarning"),
    ("pandas.parser", "CParserError"): ("pandas.errors", "ParserError"),
}

# 0.18 frequency aliases pandas 3 refuses (the runtime layer translates them the same way, after
# the call raised): codes are upper-cased as 0.18 did (but 'MS'), after 'min'/'ms'/'us'/'ns'.
# where a call takes its frequency: name -> (positional index, keyword, 'offset' | 'period' | 'either')
_PD_FREQ = {"date_range": (3, "freq", "offset"), "bdate_range": (3, "freq", "offset"),
            "timedelta_range": (3, "freq", "offset"), "period_range": (3, "freq", "period"),
            "Grouper": (2, "freq", "offset"), "TimeGrouper": (0, "freq", "offset"),
            "Period": (1, "freq", "period"), "PeriodIndex": (1, "freq", "period")}
_METHOD_FREQ = {"resample": (0, "rule", "either"), "asfreq": (0, "freq", "either"), "shift": (1, "freq", "either"),
                "tshift": (1, "freq", "either"), "to_period": (0, "freq", "period")}


def _int_literal(node) -> bool:
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        node = node.expression
    return isinstance(node, cst.Integer)


def _positional_columns(element) -> bool:
    """An .ix column key that 0.18 took as positions on string columns: an int literal, a slice
    with int literal (or no) bounds, or a list of int literals."""
    key = element.slice
    if isinstance(key, cst.Slice):
        bounds = [b for b in (key.lower, key.upper, key.step) if b is not None]
        return bool(bounds) and all(_int_literal(b) for b in bounds)
    value = key.value
    if isinstance(value, cst.List):
        return bool(value.elements) and all(isinstance(e, cst.Element) and _int_literal(e.value)
                                            for e in value.elements)
    return _int_literal(value)


def _window_signatures() -> dict:
    """0.18 pandas.stats.moments: name -> (dispatch, stat, positional parameters, keywords for the
    window, positional and keyword parameters for the statistic)."""
    sigs = {}
    for stat in _WINDOW_STATS:
        ddof = {"ddof"} if stat in ("std", "var") else set()
        sigs[f"rolling_{stat}"] = ("rolling", stat, ("arg", "window", "min_periods", "freq", "center", *ddof),
                                   {"min_periods", "center"}, (), ddof)
        sigs[f"expanding_{stat}"] = ("expanding", stat, ("arg", "min_periods", "freq", *ddof), {"min_periods"}, (), ddof)
    sigs["rolling_count"] = ("rolling", "count", ("arg", "window", "freq", "center"), {"center"}, (), set())
    sigs["expanding_count"] = ("expanding", "count", ("arg", "freq"), set(), (), set())
    sigs["rolling_quantile"] = ("rolling", "quantile", ("arg", "window", "quantile", "min_periods", "freq", "center"),
                                {"min_periods", "center"}, ("quantile",), set())
    sigs["expanding_quantile"] = ("expanding", "quantile", ("arg", "quantile", "min_periods", "freq"),
                                  {"min_periods"}, ("quantile",), set())
    sigs["rolling_apply"] = ("rolling", "apply", ("arg", "window", "func", "min_periods", "freq", "center", "args",
                                                  "kwargs"), {"min_periods", "center"}, ("func",), {"args", "kwargs"})
    sigs["expanding_apply"] = ("expanding", "apply", ("arg", "func", "min_periods", "freq", "args", "kwargs"),
                               {"min_periods"}, ("func",), {"args", "kwargs"})
    for stat in ("corr", "cov"):
        ddof = ("ddof",) if stat == "cov" else ()
        sigs[f"rolling_{stat}"] = ("rolling", stat, ("arg", "other", "window", "pairwise", "min_periods", "freq",
                                                     "center", "how", *ddof), {"min_periods", "center"}, ("other",),
                                   {"pairwise", *ddof})
        sigs[f"expanding_{stat}"] = ("expanding", stat, ("arg", "other", "min_periods", "freq", "pairwise", *ddof),
                                     {"min_periods"}, ("other",), {"pairwise", *ddof})
    ewm = {"com", "span", "halflife", "alpha", "min_periods", "adjust", "ignore_na"}
    decay = ("com", "span", "halflife", "alpha", "min_periods")
    sigs["ewma"] = ("ewm", "mean", ("arg", *decay, "freq", "adjust", "how", "ignore_na"), ewm, (), set())
    for name, stat in (("ewmstd", "std"), ("ewmvol", "std"), ("ewmvar", "var")):
        sigs[name] = ("ewm", stat, ("arg", *decay, "bias", "freq", "how", "ignore_na", "adjust"), ewm, (), {"bias"})
    sigs["ewmcorr"] = ("ewm", "corr", ("arg", "other", *decay, "freq", "pairwise", "how", "ignore_na", "adjust"),
                       ewm, ("other",), {"pairwise"})
    sigs["ewmcov"] = ("ewm", "cov", ("arg", "other", *decay, "bias", "freq", "pairwise", "how", "ignore_na",
                                     "adjust"), ewm, ("other",), {"pairwise", "bias"})
    return sigs


_WINDOW_SIGNATURES = _window_signatures()
_RESAMPLE_HOWS = {"mean", "sum", "min", "max", "median", "first", "last", "std", "var", "count", "ohlc",
                  "prod", "nunique", "sem"}


@dataclass
class _Analysis:
    wrapper: MetadataWrapper
    reports: list            # (line, old, new)
    rewrites: dict           # original node -> fn(updated node) -> new node
    commented: set           # statements that get MIGRATE_IX
    imports: set             # import lines modernize must add


class _Analyser(cst.CSTVisitor):
    METADATA_DEPENDENCIES = (PositionProvider, ParentNodeProvider)

    def __init__(self, names: dict):
        super().__init__()
        self.names = names  # pd, np, datetime... as the module binds them
        self.scopes = _Scopes()
        self.reports, self.rewrites, self.commented, self.imports = [], {}, set(), set()
        self.statements: list[cst.CSTNode] = []

    # naming the modules modern code needs ------------------------------------------------------

    def pd(self) -> str:
        if not self.names["pd"]:
            self.imports.add("import pandas as pd")
            return "pd"
        return self.names["pd"][0]

    def np(self) -> str:
        if not self.names["np"]:
            self.imports.add("import numpy as np")
            return "np"
        return self.names["np"][0]

    def module(self, name: str) -> str:
        if not self.names[name]:
            self.imports.add(f"import {name}")
            return name
        return self.names[name][0]

    def fill(self, template: str) -> str:
        """template with {pd}, {np}, {math}, {pickle} replaced by the module's names for them."""
        for key, name in (("{pd}", self.pd), ("{np}", self.np), ("{math}", lambda: self.module("math")),
                          ("{pickle}", lambda: self.module("pickle"))):
            if key in template:
                template = template.replace(key, name())
        return template

    # recording -----------------------------------------------------------------------------------

    def report(self, node, old: str, new: str, rewrite: Callable | None = None, on=None) -> None:
        line = self.get_metadata(PositionProvider, node).start.line
        self.reports.append((line, old, new))
        if rewrite is not None:
            self.rewrites[on if on is not None else node] = rewrite

    def is_pd(self, node) -> bool:
        return isinstance(node, cst.Name) and node.value in self.names["pd"]

    def is_np(self, node) -> bool:
        if isinstance(node, cst.Name):
            return node.value in self.names["np"]
        return isinstance(node, cst.Attribute) and node.attr.value == "np" and self.is_pd(node.value)

    def kind(self, node) -> str | None:
        """What a (simple) expression holds: 'frame', 'series', 'pandas', 'row' or None."""
        if isinstance(node, cst.Name):
            return self.scopes.get(node.value)
        if isinstance(node, (cst.Dict, cst.DictComp)):
            return "row"
        if isinstance(node, cst.Call):
            func = node.func
            name = func.attr.value if isinstance(func, cst.Attribute) and self.is_pd(func.value) else (
                func.value if isinstance(func, cst.Name) and func.value in self.names["from_pandas"] else None)
            if name in _FRAME_MAKERS:
                return "frame"
            if name == "Series":
                return "series"
            if isinstance(func, cst.Name) and func.value == "dict":
                return "row"
            if isinstance(func, cst.Attribute) and func.attr.value not in _NOT_PANDAS:
                inner = self.kind(func.value)
                if inner in ("frame", "series", "pandas"):  # most methods return the same kind
                    return "pandas" if func.attr.value in _CHANGES_KIND else inner
            return None
        if isinstance(node, cst.Subscript):
            inner = self.kind(node.value)
            key = node.slice[0].slice if len(node.slice) == 1 else None
            if inner == "frame":
                if isinstance(key, cst.Index) and isinstance(key.value, (cst.SimpleString, cst.Integer)):
                    return "series"  # one column
                return "pandas" if isinstance(key, cst.Index) and isinstance(key.value, cst.Name) else "frame"
            if inner == "series" and (isinstance(key, cst.Slice) or isinstance(getattr(key, "value", None),
                                                                               (cst.List, cst.Comparison))):
                return "series"
            return None
        if isinstance(node, cst.Attribute):
            inner = self.kind(node.value)
            if node.attr.value == "T" and inner:
                return inner
            if inner == "frame" and node.attr.value not in _NOT_PANDAS:
                return "series"
            return None
        if isinstance(node, cst.BinaryOperation):
            return self.kind(node.left) or self.kind(node.right)
        return None

    def pandas_receiver(self, node) -> bool:
        return self.kind(node) in ("frame", "series", "pandas")

    # scopes and bindings -----------------------------------------------------------------------

    def visit_FunctionDef(self, node):
        params = [p.name.value for p in (*node.params.params, *node.params.posonly_params, *node.params.kwonly_params)]
        self.scopes.push()  # starts from what the enclosing scope knows; parameters shadow it
        for p in params:
            self.scopes.set(p, "frame" if node.name.value == "azureml_main" else None)

    def leave_FunctionDef(self, node):
        self.scopes.pop()

    def bind(self, target, value) -> None:
        if isinstance(target, cst.Name):
            self.scopes.set(target.value, self.kind(value) if value is not None else None)
        elif isinstance(target, (cst.Tuple, cst.List)):
            values = value.elements if isinstance(value, (cst.Tuple, cst.List)) else None
            for i, el in enumerate(target.elements):
                self.bind(el.value, values[i].value if values and len(values) == len(target.elements) else None)

    def leave_Assign(self, node):
        for t in node.targets:
            self.bind(t.target, node.value)
        self.chained(node, [t.target for t in node.targets])

    def leave_AnnAssign(self, node):
        self.bind(node.target, node.value)

    def leave_AugAssign(self, node):
        self.chained(node, [node.target])

    def visit_For(self, node):
        self.bind(node.target, None)
        self.statements.append(node)

    def visit_CompFor(self, node):
        self.bind(node.target, None)

    def visit_WithItem(self, node):
        if node.asname:
            self.bind(node.asname.name, None)

    # statements (for the .ix comment) ------------------------------------------------------------

    def visit_SimpleStatementLine(self, node):
        self.statements.append(node)

    def leave_SimpleStatementLine(self, node):
        self.statements.pop()

    def visit_If(self, node):
        self.statements.append(node)

    def visit_While(self, node):
        self.statements.append(node)

    def visit_With(self, node):
        self.statements.append(node)

    def leave_If(self, node):
        self.statements.pop()

    leave_While = leave_With = leave_For = leave_If

    def visit_IndentedBlock(self, node):
        self.statements.append(None)  # a compound statement's body is not its header

    def leave_IndentedBlock(self, node):
        self.statements.pop()

    # imports ---------------------------------------------------------------------------------------

    def visit_Import(self, node):
        for alias in node.names:
            name = _dotted(alias.name)
            if name in _OLD_MODULES:
                modern = _OLD_MODULES[name]
                self.report(node, name, modern or _MODULE_NEW[name], self.rewrite_import if modern else None)

    def rewrite_import(self, updated: cst.Import):
        names = []
        for alias in updated.names:
            name = _dotted(alias.name)
            if name in _OLD_MODULES and _OLD_MODULES[name]:
                alias = alias.with_changes(name=cst.parse_expression(_OLD_MODULES[name]))
            names.append(alias)
        return updated.with_changes(names=names)

    def visit_ImportFrom(self, node):
        module = _dotted(node.module) if node.module and not node.relative else None
        if module == "sklearn.externals" and not isinstance(node.names, cst.ImportStar) and \
                [a.name.value for a in node.names] == ["joblib"]:
            asname = node.names[0].asname
            code = "import joblib" + (f" as {asname.name.value}" if asname else "")
            self.report(node, "sklearn.externals.joblib", "import joblib", lambda u: cst.parse_statement(code).body[0])
        elif module == "pandas.tools" and not isinstance(node.names, cst.ImportStar) and \
                any(a.name.value == "rplot" for a in node.names):
            self.report(node, "pandas.tools.rplot", _MODULE_NEW["pandas.tools.rplot"])
        elif not isinstance(node.names, cst.ImportStar) and any((module, a.name.value) in _MOVED_NAMES
                                                                 for a in node.names):
            self.moved_names(node, module)
        elif module in _OLD_MODULES:
            modern = _OLD_MODULES[module]
            self.report(node, module, modern or _MODULE_NEW[module], (
                lambda u: u.with_changes(module=cst.parse_expression(modern))) if modern else None)
        elif module == "pandas" and not isinstance(node.names, cst.ImportStar):
            for a in node.names:  # from pandas import rolling_mean: reported, not rewritten
                name = a.name.value
                new = {"datetime": "from datetime import datetime", "np": "import numpy as np"}.get(name)
                if name in _WINDOW_SIGNATURES or new:
                    self.report(node, f"pd.{name}", new or "x.rolling(...) / x.expanding() / x.ewm(...)")

    def moved_names(self, node, module) -> None:
        """from pandas.io.json import json_normalize -> from pandas import json_normalize (and the
        read_csv errors pandas.io.common / pandas.parser held, now in pandas.errors)."""
        moved = [_MOVED_NAMES.get((module, a.name.value)) for a in node.names]
        for a, where in zip(node.names, moved):
            if where:
                self.report(node, f"{module}.{a.name.value}", f"from {where[0]} import {where[1]}")
        if not all(moved) or len({w[0] for w in moved}) != 1:
            return  # a mix of moved and other names: reported, not rewritten

        def rewrite(u):
            names = []
            for a, (_, now) in zip(u.names, moved):
                if a.name.value != now:
                    a = a.with_changes(name=cst.Name(now), asname=a.asname or cst.AsName(name=cst.Name(a.name.value)))
                names.append(a)
            return u.with_changes(module=cst.parse_expression(moved[0][0]), names=names)
        self.rewrites[node] = rewrite

    # attributes: pd.X, np.X, pandas.tools.plotting ------------------------------------------------------

    def visit_Attribute(self, node):
        attr = node.attr.value
        if self.is_np(node.value) and attr in _NP_RENAMES and not self.is_call_func(node, _NP_CALLS):
            np_code = _code(node.value) if isinstance(node.value, cst.Name) else self.np()
            new = self.fill(_NP_RENAMES[attr].replace("{np}", np_code))
            code = f"({new})" if new.startswith("-") and self.needs_parens(node) else new
            self.report(node, f"np.{attr}", new, lambda u: cst.parse_expression(code))
        elif self.is_pd(node.value):
            if attr == "datetime":
                new = self.datetime_class()
                self.report(node, "pd.datetime", "datetime.datetime", lambda u: cst.parse_expression(new))
            elif attr == "np":
                np_code = self.np()
                self.report(node, "pd.np", "numpy", lambda u: cst.Name(np_code))
            elif attr in _PD_RENAMES and not (attr == "TimeGrouper" and self.is_call_func(node)):
                new = _PD_RENAMES[attr].format(pd=_code(node.value))
                self.report(node, f"pd.{attr}", new, lambda u: cst.parse_expression(new))
            elif attr in ("Int64Index", "Float64Index") and not self.is_call_func(node):
                self.report(node, f"pd.{attr}", "pd.Index(..., dtype=...)")
        if attr == "json_normalize" and isinstance(node.value, cst.Attribute) and \
                _dotted(node.value) in {f"{p}.io.json" for p in self.names["pd"] + self.names["pandas_module"]} and \
                not isinstance(self.parent(node), (cst.Import, cst.ImportAlias, cst.ImportFrom)):
            new = f"{_code(node.value.value.value)}.json_normalize"
            self.report(node, "pandas.io.json.json_normalize", "pd.json_normalize", lambda u: cst.parse_expression(new))
        if isinstance(node.value, cst.Attribute) and attr in ("plotting", "merge") and \
                _dotted(node.value) in {f"{p}.tools" for p in self.names["pandas_module"]} and \
                not isinstance(self.parent(node), (cst.Import, cst.ImportAlias, cst.ImportFrom)):
            base = _code(node.value.value)
            new = f"{base}.plotting" if attr == "plotting" else base
            self.report(node, f"pandas.tools.{attr}", new.replace(base, "pandas", 1),
                        lambda u: cst.parse_expression(new))

    def parent(self, node):
        return self.get_metadata(ParentNodeProvider, node, None)

    def is_call_func(self, node, names=None) -> bool:
        parent = self.parent(node)
        ok = isinstance(parent, cst.Call) and parent.func is node
        return ok and (names is None or node.attr.value in names)

    def needs_parens(self, node) -> bool:
        parent = self.parent(node)
        if isinstance(parent, (cst.Attribute, cst.Subscript)) and parent.value is node:
            return True
        if isinstance(parent, cst.Call) and parent.func is node:
            return True
        if isinstance(parent, cst.UnaryOperation):
            return True
        return isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, cst.Power) and parent.left is node

    def datetime_class(self) -> str:
        if self.names["datetime_class"]:  # from datetime import datetime [as dt]
            return self.names["datetime_class"][0]
        return f"{self.module('datetime')}.datetime"

    # .ix[...] ---------------------------------------------------------------------------------------

    def visit_Subscript(self, node):
        value = node.value
        if isinstance(value, cst.Attribute) and value.attr.value == "ix":
            to_loc = lambda u: u.with_changes(value=u.value.with_changes(attr=cst.Name("loc")))
            checked = node.slice
            if len(node.slice) == 2 and _positional_columns(node.slice[1]):
                # 0.18 took int column keys as positions (the columns are nearly always strings):
                # df.ix[rows, 0] -> df.loc[rows, df.columns[0]]; the rows stay labels (a default
                # RangeIndex is integer, so .ix was label-based there). The receiver is evaluated
                # twice, so only a name or attribute chain is rewritten.
                recv = value.value
                if _dotted(recv) is None:
                    return self.report(node, "DataFrame.ix", ".loc/.iloc")
                checked = node.slice[:1]

                def to_loc_columns(u):
                    key = u.slice[1].slice
                    code = _code(key) if isinstance(key, cst.Slice) else _code(key.value)
                    cols = cst.Index(value=cst.parse_expression(f"{_code(recv)}.columns[{code}]"))
                    return to_loc(u).with_changes(slice=[u.slice[0], u.slice[1].with_changes(slice=cols)])
                self.report(node, "DataFrame.ix", ".loc[rows, df.columns[positions]]", to_loc_columns)
            else:
                self.report(node, "DataFrame.ix", ".loc/.iloc", to_loc)
            if any(_has_int(el) for el in checked) and self.statements and self.statements[-1] is not None:
                self.commented.add(self.statements[-1])  # the innermost statement (or header) holding it

    # chained assignment ---------------------------------------------------------------------------

    def chained(self, stmt, targets) -> None:
        """df['a'][i] = x, df.a[i] = x, df[mask]['a'] = x, df.loc[i]['a'] = x on a known DataFrame:
        under copy-on-write the inner selection is a copy, so the assignment changes nothing."""
        for target in targets:
            if not (isinstance(target, cst.Subscript) and len(target.slice) == 1):
                continue
            inner, key = target.value, target.slice[0].slice
            if isinstance(inner, cst.Subscript) and len(inner.slice) == 1 and isinstance(inner.slice[0].slice, cst.Index):
                base, first = inner.value, inner.slice[0].slice.value
                indexer = base.attr.value if isinstance(base, cst.Attribute) and base.attr.value in ("loc", "iloc", "ix") else None
                frame = base.value if indexer else base
                if isinstance(frame, cst.Name) and self.kind(frame) in ("frame", "pandas"):
                    # df[k1][k2]: the string is the column; with none (or both), k1 is (the 0.18 idiom)
                    second_is_col = isinstance(key, cst.Index) and isinstance(key.value, cst.SimpleString)
                    col_first = indexer is None and (isinstance(first, cst.SimpleString) or not second_is_col)
                    self.chained_report(target, frame, "first" if col_first else "second", indexer)
            elif isinstance(inner, cst.Attribute) and isinstance(inner.value, cst.Name) and \
                    self.kind(inner.value) in ("frame", "pandas") and inner.attr.value not in _NOT_PANDAS:
                self.chained_report(target, inner.value, repr(inner.attr.value), None)

    def chained_report(self, target, frame, column, indexer) -> None:
        f = _code(frame)

        def rewrite(u):
            second = u.slice[0].slice
            first = u.value.slice[0].slice if isinstance(u.value, cst.Subscript) else None
            if column == "first":
                col, rows = _code(first.value), second
            elif column == "second":
                if not isinstance(second, cst.Index):
                    return u
                col, rows = _code(second.value), first
            else:  # an attribute's name
                col, rows = column, second
            rows_code = _code(rows.value) if isinstance(rows, cst.Index) else _code(rows)
            positional = indexer == "iloc" or (indexer is None and isinstance(rows, cst.Slice) and all(
                b is None or isinstance(b, cst.Integer) for b in (rows.lower, rows.upper)))  # s[1:3] is positional
            if positional:
                return cst.parse_expression(f"{f}.iloc[{rows_code}, {f}.columns.get_loc({col})]")
            return cst.parse_expression(f"{f}.loc[{rows_code}, {col}]")

        self.report(target, f"chained assignment {_code(target)} = ...", _code(rewrite(target)) + " = ...", rewrite)

    # calls ---------------------------------------------------------------------------------------------

    def visit_Call(self, node):
        func, split = node.func, _split_args(node)
        if split is None:  # f(*args, **kw): an old pandas function is still reported, not rewritten
            if isinstance(func, cst.Attribute) and self.is_pd(func.value) and func.attr.value in _WINDOW_SIGNATURES:
                self.report(node, f"pd.{func.attr.value}", "x.rolling(...) / x.expanding() / x.ewm(...)")
            return
        pos, kw = split
        if isinstance(func, cst.Attribute):
            recv, name = func.value, func.attr.value
            if name == "plot" and "axes" in kw:
                return self.plot_axes(node, recv, kw)
            if self.is_pd(recv) and name in _PD_FREQ:
                self.freq_literal(_PD_FREQ[name], pos, kw)
            elif name in _METHOD_FREQ and not self.is_pd(recv):
                self.freq_literal(_METHOD_FREQ[name], pos, kw)
            if self.is_pd(recv):
                return self.pd_call(node, name, pos, kw)
            if isinstance(recv, cst.Name) and recv.value in self.names["modules"] and not self.is_np(recv):
                return  # six.iteritems(d), codecs.lookup(...): a module's function, not a method
            if self.is_np(recv) and name in _NP_CALLS and len(pos) == 1 and not kw:
                template = self.fill(_NP_CALLS[name])
                self.report(node, f"np.{name}", template.replace("{0}", "a"), lambda u: cst.parse_expression(
                    template.replace("{0}", _atom(u.args[0].value) if "{0}." in template else _code(u.args[0].value))))
                return
            if isinstance(recv, cst.Attribute) and recv.attr.value == "DataFrame" and self.is_pd(recv.value) and \
                    name == "from_csv":
                return self.from_csv(node, pos, kw)
            method = getattr(self, f"m_{name}", None)
            if method is not None:
                method(node, recv, pos, kw)

    def freq_literal(self, where, pos, kw) -> None:
        """A 0.18 frequency alias in a string literal: 'M' -> 'ME', '15T' -> '15min'... Where the
        call may work on periods as well as timestamps (resample, asfreq, shift) and the two modern
        spellings differ ('M' stays 'M' for periods), it is reported, not rewritten."""
        index, keyword, context = where
        arg = kw.get(keyword) or (pos[index] if len(pos) > index else None)
        if arg is None or not isinstance(arg.value, cst.SimpleString):
            return
        string = arg.value
        value = string.evaluated_value
        if not isinstance(value, str) or string.quote not in ("'", '"') or string.prefix.lower() not in ("", "u"):
            return
        offset, period = modern_freq(value, False), modern_freq(value, True)
        new = period if context == "period" else offset
        if new == value and not (context == "either" and period != value):
            return
        if context == "either" and offset != period:
            return self.report(string, f"freq={value!r}", f"freq={offset!r} (freq={period!r} on a PeriodIndex)")
        raw = string.value[len(string.prefix) + 1:-1]
        code = f"{string.prefix}{string.quote}{new}{string.quote}"
        self.report(string, f"freq={value!r}", f"freq={new!r}",
                    (lambda u: u.with_changes(value=code)) if raw == value else None)

    def plot_axes(self, node, recv, kw) -> None:
        """matplotlib 1.5: plt.plot(x, y, axes=ax) drew on ax -> ax.plot(x, y)."""
        pyplot = _dotted(recv) == "matplotlib.pyplot" or (isinstance(recv, cst.Name) and
                                                          recv.value in self.names["pyplot"])
        if not pyplot and self.pandas_receiver(recv):
            return  # df.plot(...): pandas' own keywords
        ax = kw["axes"].value
        rewrite = None
        if _dotted(ax) is not None:
            def rewrite(u):
                call = u.with_changes(func=cst.parse_expression(f"{_code(ax)}.plot"))
                return _with_args(call, [a for a in u.args if not (a.keyword and a.keyword.value == "axes")])
        self.report(node, "plt.plot(axes=)" if pyplot else "Axes.plot(axes=)", "ax.plot(...)", rewrite)

    # method rules: m_<name>(call, receiver, positional args, keyword args)

    def m_tshift(self, node, recv, pos, kw):
        ok = len(pos) <= 3 and set(kw) <= {"periods", "freq", "axis"}
        has_freq = len(pos) >= 2 or "freq" in kw
        self.report(node, "DataFrame.tshift", ".shift(periods, freq='infer')", (lambda u: _with_args(
            _rename(u, "shift"), list(u.args) + ([] if has_freq else [_kw("freq", "'infer'")]))) if ok else None)

    def m_as_matrix(self, node, recv, pos, kw):
        cols = pos[0] if pos else kw.get("columns")
        def rewrite(u):
            r = _atom(u.func.value)
            if cols is None:
                return cst.parse_expression(f"{r}.values")
            return cst.parse_expression(f"{r}[{_code(u.args[0].value)}].values")
        self.report(node, "DataFrame.as_matrix", ".values", rewrite if len(node.args) <= 1 else None)

    def m_get_value(self, node, recv, pos, kw):
        take = "iat" if _is_true(kw.get("takeable")) else "at"
        n = len(pos)
        rewrite = None
        if n in (1, 2) and set(kw) <= {"takeable"}:
            rewrite = lambda u: cst.parse_expression(
                f"{_atom(u.func.value)}.{take}[{', '.join(_code(a.value) for a in u.args[:n])}]")
        self.report(node, "DataFrame.get_value" if n != 1 else "Series.get_value", f".{take}[r, c]", rewrite)

    def m_set_value(self, node, recv, pos, kw):
        take = "iat" if _is_true(kw.get("takeable")) else "at"
        n = len(pos)
        old = "DataFrame.set_value" if n == 3 else "Series.set_value"
        stmt = self.parent(node)
        rewrite = None
        if n in (2, 3) and set(kw) <= {"takeable"} and (
                isinstance(stmt, cst.Expr) or isinstance(stmt, cst.Assign) and len(stmt.targets) == 1 and
                isinstance(stmt.targets[0].target, cst.Name) and isinstance(recv, cst.Name) and
                stmt.targets[0].target.value == recv.value):
            def rewrite(u):
                call = u.value
                keys = ", ".join(_code(a.value) for a in call.args[:n - 1])
                return cst.parse_statement(
                    f"{_atom(call.func.value)}.{take}[{keys}] = {_code(call.args[n - 1].value)}\n").body[0]
        self.report(node, old, f".{take}[r, c] = v", rewrite, on=stmt if rewrite else None)

    def m_convert_objects(self, node, recv, pos, kw):
        numeric = _is_true(kw.get("convert_numeric"))
        rest = set(kw) - {"convert_numeric", "copy", "convert_dates", "convert_timedeltas"}
        soft = all(_const(kw.get(k)) in (None, "True") for k in ("convert_dates", "convert_timedeltas"))
        new = ".apply(pd.to_numeric, errors='coerce')" if numeric else ".infer_objects()"
        series, pd = self.kind(recv) == "series", self.pd() if numeric else None

        def rewrite(u):
            r = _atom(u.func.value)
            if not numeric:
                return cst.parse_expression(f"{r}.infer_objects()")
            if series:
                return cst.parse_expression(f"{pd}.to_numeric({_code(u.func.value)}, errors='coerce')")
            return cst.parse_expression(f"{r}.apply({pd}.to_numeric, errors='coerce')")
        self.report(node, "DataFrame.convert_objects", new, rewrite if not pos and not rest and soft else None)

    def m_iteritems(self, node, recv, pos, kw):
        self.report(node, ".iteritems", ".items()", lambda u: _rename(u, "items"))

    def m_sort_index(self, node, recv, pos, kw):
        if "by" in kw:
            self.report(node, "DataFrame.sort_index(by=)", ".sort_values(by=...)",
                        None if pos else lambda u: _rename(u, "sort_values"))

    def m_drop(self, node, recv, pos, kw):
        if len(pos) >= 2 and len(pos) <= 5:
            self.report(node, "DataFrame.drop(labels, axis) positional", ".drop(labels, axis=...)",
                        lambda u: _keywordise(u, ("axis", "level", "inplace", "errors"), 1))

    def m_sort(self, node, recv, pos, kw):
        if not (_FRAME_KW & set(kw) or self.pandas_receiver(recv)):
            return
        kind = self.kind(recv)
        statement = isinstance(self.parent(node), cst.Expr)
        frame = bool(pos) or "columns" in kw or kind == "frame" or (kind != "series" and not statement)
        if frame:
            by = bool(pos) or "columns" in kw
            def rewrite(u):
                u = _keywordise(u, ("axis", "ascending", "inplace", "kind", "na_position"), 1)
                args = [a.with_changes(keyword=cst.Name("by")) if a.keyword and a.keyword.value == "columns" else a
                        for a in u.args]
                if not by:
                    args = [a for a in args if not (a.keyword and a.keyword.value in ("kind", "na_position"))]
                return _with_args(_rename(u, "sort_values" if by else "sort_index"), args)
            self.report(node, "DataFrame.sort", ".sort_values(by=...)" if by else ".sort_index()", rewrite)
        else:  # in place: s = s.sort_values(), as pandas 3.1 deprecates inplace= (PDEP-8)
            rebind = statement and "inplace" not in kw and isinstance(recv, (cst.Name, cst.Attribute))

            def rewrite(u):
                call = _rename(_keywordise(u, ("axis", "ascending", "kind", "na_position", "inplace"), 0), "sort_values")
                if not rebind and "inplace" not in kw:
                    call = _with_args(call, list(call.args) + [_kw("inplace", "True")])
                return call

            def rebound(u):  # the whole statement: s.sort() -> s = s.sort_values()
                call = rewrite(u.value)
                return cst.Assign(targets=[cst.AssignTarget(cst.parse_expression(_code(recv)))], value=call)

            self.report(node, "Series.sort", "s = s.sort_values()", rebound if rebind else rewrite,
                        on=self.parent(node) if rebind else None)

    def m_append(self, node, recv, pos, kw):
        if not (_APPEND_KW & set(kw) or self.pandas_receiver(recv)) or len(pos) != 1 or set(kw) - _APPEND_KW:
            return
        other_kind, series = self.kind(pos[0].value), self.kind(recv) == "series"
        pd = self.pd()

        def rewrite(u):
            new_other = u.args[0].value
            if isinstance(new_other, cst.List):
                items = [_code(e.value) for e in new_other.elements]
                if items and all(isinstance(e.value, cst.Dict) for e in new_other.elements):
                    items = [f"{pd}.DataFrame({_code(new_other)})"]
            elif other_kind in ("row", "series") and not series:  # one row, named by the Series' name
                items = [f"{pd}.DataFrame([{_code(new_other)}])"]
            else:
                items = [_code(new_other)]
            extra = "".join(f", {a.keyword.value}={_code(a.value)}" for a in u.args[1:])
            return cst.parse_expression(f"{pd}.concat([{', '.join([_code(u.func.value)] + items)}]{extra})")
        self.report(node, "DataFrame.append", "pd.concat([df, other])", rewrite)

    def m_irow(self, node, recv, pos, kw):
        self.positional(node, "DataFrame.irow", "iloc[{}]")

    def m_iget(self, node, recv, pos, kw):
        self.positional(node, "Series.iget", "iloc[{}]")

    def m_icol(self, node, recv, pos, kw):
        self.positional(node, "DataFrame.icol", "iloc[:, {}]")

    def m_iget_value(self, node, recv, pos, kw):
        self.positional(node, "DataFrame.iget_value", "iat[{}]")

    def positional(self, node, old, template):
        rewrite = None
        if node.args and all(a.keyword is None for a in node.args):
            rewrite = lambda u: cst.parse_expression(
                f"{_atom(u.func.value)}." + template.format(", ".join(_code(a.value) for a in u.args)))
        self.report(node, old, "." + template.format("i"), rewrite)

    def m_valid(self, node, recv, pos, kw):
        if self.pandas_receiver(recv) and not pos:
            self.report(node, "Series.valid", ".dropna()", lambda u: _rename(u, "dropna"))

    def m_order(self, node, recv, pos, kw):
        if self.pandas_receiver(recv) and not pos and "na_last" not in kw:
            self.report(node, "Series.order", ".sort_values()", lambda u: _rename(u, "sort_values"))

    def m_nonzero(self, node, recv, pos, kw):
        if self.kind(recv) == "series":
            self.report(node, "Series.nonzero", ".to_numpy().nonzero()",
                        lambda u: cst.parse_expression(f"{_atom(u.func.value)}.to_numpy().nonzero()"))

    def m_reshape(self, node, recv, pos, kw):
        if self.kind(recv) == "series":
            self.report(node, "Series.reshape", ".to_numpy().reshape(...)", lambda u: u.with_changes(
                func=cst.parse_expression(f"{_atom(u.func.value)}.to_numpy().reshape")))

    def m_applymap(self, node, recv, pos, kw):
        self.report(node, "DataFrame.applymap", ".map(func)", lambda u: _rename(u, "map"))

    def m_reindex_axis(self, node, recv, pos, kw):
        self.report(node, "DataFrame.reindex_axis", ".reindex(labels, axis=...)",
                    lambda u: _keywordise(_rename(u, "reindex"), ("axis", "method", "level", "copy", "limit"), 1))

    def m_lookup(self, node, recv, pos, kw):
        if len(pos) == 2 and not kw and not (isinstance(recv, cst.Name) and recv.value in self.names["modules"]):
            self.report(node, "DataFrame.lookup", "df.to_numpy()[df.index.get_indexer(r), df.columns.get_indexer(c)]")

    def m_mad(self, node, recv, pos, kw):
        if self.pandas_receiver(recv):
            self.report(node, "DataFrame.mad", "(x - x.mean()).abs().mean()")

    def m_fillna(self, node, recv, pos, kw):
        method = _const(kw.get("method"))
        if "method" not in kw and "downcast" not in kw:
            return
        fill = {"ffill": "ffill", "pad": "ffill", "bfill": "bfill", "backfill": "bfill"}.get(method)
        ok = fill and not pos and "downcast" not in kw and "value" not in kw
        self.report(node, "fillna(method=)", f".{fill or 'ffill'}()", (lambda u: _with_args(
            _rename(u, fill), [a for a in u.args if a.keyword.value != "method"])) if ok else None)

    def m_resample(self, node, recv, pos, kw):
        gone = set(kw) & {"how", "fill_method", "kind", "loffset", "limit", "base", "axis"}
        if not gone:
            return
        how, fill = _const(kw.get("how")), _const(kw.get("fill_method"))
        fill = {"pad": "ffill", "backfill": "bfill"}.get(fill, fill)
        limit = kw.get("limit")

        def rewrite(u):
            base = _code(_with_args(u, [a for a in u.args if not (a.keyword and a.keyword.value in gone)]))
            if "how" in kw:
                tail = f"{how}()" if how in _RESAMPLE_HOWS else f"agg({_code(kw['how'].value)})"
            else:
                tail = f"{fill}({'limit=' + _code(limit.value) if limit else ''})"
            return cst.parse_expression(f"{base}.{tail}")

        ok = gone <= {"how", "fill_method", "limit"} and (("how" in kw) != ("fill_method" in kw)) and \
            ("how" in kw and "limit" not in kw or fill in ("ffill", "bfill"))
        self.report(node, "resample(how=)", ".resample(rule).mean() / .agg(how)", rewrite if ok else None)

    def m_between(self, node, recv, pos, kw):
        value = _const(pos[2] if len(pos) == 3 else kw.get("inclusive"))
        if value in ("True", "False"):
            new = "'both'" if value == "True" else "'neither'"

            def rewrite(u):
                keep = [a for i, a in enumerate(u.args) if not (
                    a.keyword is None and i == 2 or a.keyword is not None and a.keyword.value == "inclusive")]
                return _with_args(u, keep + [_kw("inclusive", new)])
            self.report(node, "Series.between(inclusive=bool)", f"inclusive={new}", rewrite)

    # pd.<function>(...) --------------------------------------------------------------------------------

    def pd_call(self, node, name, pos, kw):
        if name.startswith(("rolling_", "expanding_")) or name in ("ewma", "ewmstd", "ewmvar", "ewmvol", "ewmcorr", "ewmcov"):
            return self.window(node, name, pos, kw)
        if name == "TimeGrouper":
            ok = set(kw) <= {"freq", "closed", "label", "convention"} and len(pos) <= 1
            self.report(node, "pd.TimeGrouper", "pd.Grouper(freq=...)", (lambda u: _rename(
                _keywordise(u, ("freq",), 0), "Grouper")) if ok else None)
        elif name in ("Int64Index", "Float64Index") and len(pos) == 1:
            dtype = "'int64'" if name == "Int64Index" else "'float64'"
            self.report(node, f"pd.{name}", f"pd.Index(data, dtype={dtype})", lambda u: _with_args(
                _rename(u, "Index"), list(u.args) + [_kw("dtype", dtype)]) if "dtype" not in kw else _rename(u, "Index"))
        elif name == "value_counts" and pos:
            self.report(node, "pd.value_counts", "pd.Series(values).value_counts()", lambda u: cst.parse_expression(
                f"{_code(u.func.value)}.Series({_code(u.args[0].value)}).value_counts("
                f"{', '.join(_code(a.with_changes(comma=cst.MaybeSentinel.DEFAULT)) for a in u.args[1:])})"))
        elif name == "concat" and len(pos) >= 2:
            self.report(node, "pd.concat(objs, axis) positional", "pd.concat(objs, axis=...)",
                        lambda u: _keywordise(u, ("axis", "join", "join_axes", "ignore_index", "keys"), 1))
        elif name == "concat" and "join_axes" in kw:
            self.report(node, "pd.concat(join_axes=)", "pd.concat(...).reindex(...)")
        elif name in ("read_csv", "read_table"):
            self.read_csv(node, name, pos, kw)
        elif name == "to_datetime" and set(kw) & {"coerce", "box", "infer_datetime_format"}:
            ok = "box" not in kw and _const(kw.get("coerce")) in (None, "True")
            def rewrite(u):
                args = [a for a in u.args if not (a.keyword and a.keyword.value in ("coerce", "infer_datetime_format"))]
                return _with_args(u, args + ([_kw("errors", "'coerce'")] if "coerce" in kw else []))
            self.report(node, "pd.to_datetime(coerce=/box=/infer_datetime_format=)", "errors='coerce'",
                        rewrite if ok else None)

    def read_csv(self, node, name, pos, kw):
        gone = set(kw) & {"squeeze", "prefix", "mangle_dupe_cols", "infer_datetime_format", "error_bad_lines",
                          "warn_bad_lines", "delim_whitespace", "skip_footer", "verbose"}
        if not gone and len(pos) < 2:
            return
        simple = gone <= {"squeeze", "infer_datetime_format", "error_bad_lines", "warn_bad_lines",
                          "delim_whitespace", "verbose"}
        def rewrite(u):
            u = _keywordise(u, ("sep", "delimiter", "header", "names", "index_col", "usecols"), 1)
            args = [a for a in u.args if not (a.keyword and a.keyword.value in gone)]
            if {"error_bad_lines", "warn_bad_lines"} & gone:
                error = _const(kw.get("error_bad_lines")) != "False"
                warn = _const(kw.get("warn_bad_lines")) != "False"
                args.append(_kw("on_bad_lines", "'error'" if error else ("'warn'" if warn else "'skip'")))
            if _is_true(kw.get("delim_whitespace")):
                args.append(_kw("sep", "r'\\s+'"))
            call = _with_args(u, args)
            return cst.parse_expression(f"{_code(call)}.squeeze('columns')") if _is_true(kw.get("squeeze")) else call
        old = f"pd.{name}(" + ", ".join(sorted(f"{k}=" for k in gone)) + ")" if gone else f"pd.{name}(path, sep) positional"
        self.report(node, old, f"pd.{name}(..., sep=..., on_bad_lines=...)", rewrite if simple else None)

    def window(self, node, name, pos, kw):
        """pd.rolling_X(arg, window, ...) -> arg.rolling(window, ...).X(...), and the expanding_*
        and ewm* families, by their 0.18 signatures; freq=/how= (resampling first) stay as they are."""
        sig = _WINDOW_SIGNATURES.get(name)
        if sig is None:
            return self.report(node, f"pd.{name}", "x.rolling(window, win_type=...).mean()")
        dispatch, stat, params, window_kw, stat_pos, stat_kw = sig
        got = dict(zip(params, (a.value for a in pos)))
        ok = len(pos) <= len(params) and not set(got) & set(kw) and not {"freq", "how"} & (set(got) | set(kw)) \
            and set(kw) <= set(params)
        names = {**{n: i for i, n in enumerate(params[:len(pos)])}, **{k: k for k in kw}}
        if stat in ("corr", "cov") and isinstance(got.get("other"), (cst.Integer, cst.Float)) and \
                "window" not in names and dispatch == "rolling":
            names["window"] = names.pop("other")  # 0.18: pd.rolling_corr(df, 5) is pairwise over df
        ok = ok and "arg" in names and (dispatch != "rolling" or "window" in names) and \
            all(n in names for n in stat_pos if n != "other")

        def rewrite(u):
            p = [a.value for a in u.args if a.keyword is None]
            value = {n: (p[i] if isinstance(i, int) else next(a.value for a in u.args if a.keyword and
                                                              a.keyword.value == i)) for n, i in names.items()}
            head = [_code(value["window"])] if dispatch == "rolling" else []
            head += [f"{n}={_code(v)}" for n, v in value.items() if n in window_kw]
            if name == "rolling_count":
                head.append("min_periods=0")
            tail = [_code(value[n]) for n in stat_pos if n in value]
            tail += [f"{n}={_code(v)}" for n, v in value.items() if n in stat_kw]
            if stat == "apply":
                tail.append("raw=True")
            return cst.parse_expression(f"{_atom(value['arg'])}.{dispatch}({', '.join(head)}).{stat}({', '.join(tail)})")

        self.report(node, f"pd.{name}", f"x.{dispatch}(...).{stat}()", rewrite if ok else None)

    def from_csv(self, node, pos, kw):
        ok = len(pos) == 1 and not kw
        self.report(node, "DataFrame.from_csv", "pd.read_csv(path, index_col=0, parse_dates=True)", (
            lambda u: cst.parse_expression(f"{_code(u.func.value.value)}.read_csv({_code(u.args[0].value)}, "
                                           f"index_col=0, parse_dates=True)")) if ok else None)


class _Rewriter(cst.CSTTransformer):
    """Applies an analysis: node rewrites (children first), the .ix comments, missing imports."""

    def __init__(self, analysis: _Analysis):
        super().__init__()
        self.a = analysis

    def on_leave(self, original, updated):
        updated = super().on_leave(original, updated)
        fn = self.a.rewrites.get(original)
        if fn is not None:
            updated = fn(updated)
        if original in self.a.commented:
            updated = _comment(updated)
        return updated

    def leave_Module(self, original, updated):
        if not self.a.imports:
            return updated
        body = list(updated.body)
        at = 0
        for i, stmt in enumerate(body):
            first = stmt.body[0] if isinstance(stmt, cst.SimpleStatementLine) else None
            if isinstance(first, (cst.Import, cst.ImportFrom)) or (i == 0 and isinstance(first, cst.Expr) and
                                                                   isinstance(first.value, cst.SimpleString)):
                at = i + 1
            else:
                break
        new = [cst.parse_statement(line + "\n") for line in sorted(self.a.imports)]
        return updated.with_changes(body=body[:at] + new + body[at:])


def _comment(stmt):
    def add(ws: cst.TrailingWhitespace) -> cst.TrailingWhitespace:
        if ws.comment is not None:
            if MIGRATE_IX in ws.comment.value:
                return ws
            return ws.with_changes(comment=cst.Comment(f"{ws.comment.value}  {MIGRATE_IX}"))
        return ws.with_changes(whitespace=cst.SimpleWhitespace("  "), comment=cst.Comment(MIGRATE_IX))
    if isinstance(stmt, cst.SimpleStatementLine):
        return stmt.with_changes(trailing_whitespace=add(stmt.trailing_whitespace))
    body = getattr(stmt, "body", None)
    if isinstance(body, cst.IndentedBlock):
        return stmt.with_changes(body=body.with_changes(header=add(body.header)))
    if isinstance(body, cst.SimpleStatementSuite):
        return stmt.with_changes(body=body.with_changes(trailing_whitespace=add(body.trailing_whitespace)))
    return stmt


def _bindings(module: cst.Module) -> dict:
    """How the module names pandas, numpy, datetime, math, pickle and pyplot (every import, any scope)."""
    names = {k: [] for k in ("pd", "np", "datetime", "datetime_class", "math", "pickle", "from_pandas",
                             "pandas_module", "modules", "pyplot")}

    class V(cst.CSTVisitor):
        def visit_Import(self, node):
            for a in node.names:
                full = _dotted(a.name)
                bound = a.asname.name.value if a.asname else full.split(".")[0]
                names["modules"].append(bound)
                if full == "pandas" or (full.startswith("pandas.") and not a.asname):
                    names["pandas_module"].append(bound)
                key = {"pandas": "pd", "numpy": "np", "datetime": "datetime", "math": "math", "pickle": "pickle"}.get(full)
                if key and (a.asname or full == bound):
                    names[key].append(bound)
                if full in ("matplotlib.pyplot", "pylab") and (a.asname or full == bound):
                    names["pyplot"].append(bound)

        def visit_ImportFrom(self, node):
            module = _dotted(node.module) if node.module else None
            if isinstance(node.names, cst.ImportStar):
                return
            for a in node.names:
                bound = (a.asname.name if a.asname else a.name).value
                if module == "pandas":
                    names["from_pandas"].append(bound)
                if module == "datetime" and a.name.value == "datetime":
                    names["datetime_class"].append(bound)
                if module == "matplotlib" and a.name.value == "pyplot":
                    names["pyplot"].append(bound)

    module.visit(V())
    return names


def _analyse(source: str) -> _Analysis | None:
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError:
        return None
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)  # the tree is ours alone
    analyser = _Analyser(_bindings(wrapper.module))
    wrapper.visit(analyser)
    return _Analysis(wrapper, analyser.reports, analyser.rewrites, analyser.commented, analyser.imports)
