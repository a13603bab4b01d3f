"""Python 2.7 scripts (publisher/python2.py): detection, conversion with Python 2 meaning kept,
line maps, and the warnings for scripts whose meaning differs between the two."""
from __future__ import annotations

import builtins
import io
import zipfile

import numpy as np
import pytest

from publisher import bundle, python2
from publisher.errors import ScriptError
from publisher.schema import parse_schema, schema_to_document

PY2_SCRIPT = (b"def azureml_main(dataframe1 = None, dataframe2 = None):\n"
              b"    print 'rows', len(dataframe1)\n"
              b"    return dataframe1,\n")


def run(source: bytes, *args):
    """Convert a Python 2 function ``f`` and call it (Python 2's ``/`` put into builtins as the
    runtime does)."""
    converted = python2.convert(source, "score.py")
    namespace: dict = {}
    setattr(builtins, python2.DIV_NAME, python2.py2_div)
    setattr(builtins, python2.IDIV_NAME, python2.py2_idiv)
    try:
        exec(compile(converted.source, "score.py", "exec"), namespace)
        return namespace["f"](*args)
    finally:
        delattr(builtins, python2.DIV_NAME)
        delattr(builtins, python2.IDIV_NAME)


def test_a_print_statement_is_python_2_only():
    assert python2.py3_error(PY2_SCRIPT, "score.py") is not None
    assert python2.parses_as_py2(PY2_SCRIPT)


def test_broken_code_is_neither():
    assert not python2.parses_as_py2(b"def f(:\n    pass\n")


@pytest.mark.parametrize("expr, expected", [
    ("35 / 10", 3), ("-7 / 2", -4), ("7.0 / 2", 3.5), ("7 / 2.0", 3.5), ("True / 1", 1),
    ("(10 * 3 / 4) / 2", 3), ("1 / (2 / 4.0)", 2.0),
])
def test_division_between_integers_floors_as_in_python_2(expr, expected):
    result = run(f"def f():\n    return {expr}\n".encode())
    assert result == expected and type(result) is type(expected)


def test_augmented_division_and_numpy_integers_floor():
    source = b"import numpy as np\ndef f():\n    t = 10\n    t /= 4\n    return t, np.array([7, 9]) / 2, np.int64(7) / 2, np.array([7.0]) / 2\n"
    t, arr, scalar, floats = run(source)
    assert t == 2 and arr.tolist() == [3, 4] and scalar == 3 and floats.tolist() == [3.5]


def test_pandas_division_stays_true_division_as_in_pandas_0_18():
    import pandas as pd

    series = run(b"def f(s):\n    return s / 2\n", pd.Series([1, 3]))
    assert series.tolist() == [0.5, 1.5]


@pytest.mark.parametrize("future", [b"from __future__ import division", b"from __future__ import (division)",
                                    b"from __future__ import (print_function,\n    division)",
                                    b'"""doc"""\nfrom __future__ import absolute_import, division'])
def test_future_division_is_respected(future):
    assert run(future + b"\ndef f():\n    return 35 / 10\n") == 3.5


def test_augmented_division_keeps_an_array_in_place():
    source = b"import numpy as np\ndef f():\n    a = np.array([7, 9])\n    alias = a\n    a /= 2\n    return alias\n"
    assert run(source).tolist() == [3, 4]


def test_crlf_files_keep_their_line_ends_and_form_feeds_do_not_shift_lines():
    source = b"\x0c\r\ndef f():\r\n    return reduce(lambda a, b: a + b, [1, 2])\r\n"
    converted = python2.convert(source, "score.py")
    assert converted.source.count(b"\r\n") == converted.source.count(b"\n") == 4
    assert [python2.original_line(converted.line_map, n) for n in (1, 2, 3, 4)] == [1, 1, 2, 3]


def test_concurrent_conversions_keep_each_files_division():
    import concurrent.futures

    true_div = b"from __future__ import division\n" + b"x = 3 / 2\n" * 300
    py2_div = b"y = 3 / 2\n" * 300
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda src: python2.convert(src, "score.py").source, [true_div, py2_div] * 6))
    assert all((b"__py2_div__" in r) == (i % 2 == 1) for i, r in enumerate(results))


def test_long_attribute_chains_convert_quickly():
    import time

    started = time.monotonic()
    python2.convert(b"print 'x'\nx = a" + b".b" * 800 + b"\n", "score.py")
    assert time.monotonic() - started < 10  # fissix's fix_sorted took 48 s here


def test_a_latin_1_python_3_file_is_not_taken_as_python_2():
    assert not python2.parses_as_py2("s = 'caf\xe9'\n".encode("latin-1"))


def test_tabs_count_eight_columns():
    # an 8-space line followed by a tab-indented one: one block in Python 2, TabError in 3
    source = b"def f():\n        x = 1\n\tif x:\n\t\treturn 'tab block'\n"
    assert isinstance(python2.py3_error(source, "score.py"), (TabError, IndentationError, SyntaxError))
    assert run(source) == "tab block"


def test_tabs_inside_a_multi_line_string_are_kept():
    source = b'def f():\n\ts = """a\n\tb"""\n\treturn s\n'
    assert run(source) == "a\n\tb"


def test_dict_views_are_lists_but_a_pandas_index_stays_an_index():
    import pandas as pd

    source = b"def f(d, df):\n    ks = d.keys()\n    ks.sort()\n    return ks, d.items()[0], df.keys().tolist()\n"
    assert run(source, {"b": 2, "a": 1}, pd.DataFrame({"x": [1]})) == (["a", "b"], ("b", 2), ["x"])


def test_common_python_2_idioms_convert():
    source = (b"import cPickle\nfrom StringIO import StringIO\n"
              b"def f(d):\n"
              b"    out = []\n"
              b"    for i in xrange(2):\n"
              b"        out.append(unicode(i))\n"
              b"    try:\n"
              b"        raise ValueError, 'x'\n"
              b"    except ValueError, e:\n"
              b"        out.append(str(e))\n"
              b"    if d.has_key('a'):\n"
              b"        out.append(`d['a']`)\n"
              b"    for k, v in d.iteritems():\n"
              b"        out.append(k)\n"
              b"    out.append(map(str, [1, 2]))\n"
              b"    return out, 10L, StringIO('s').read(), cPickle.loads(cPickle.dumps(1))\n")
    assert run(source, {"a": 5}) == (["0", "1", "x", "5", "a", ["1", "2"]], 10, "s", 1)


def test_an_added_import_line_is_mapped_back():
    source = b"def f():\n    x = reduce(lambda a, b: a + b, [1, 2, 3])\n    return x\n"
    converted = python2.convert(source, "score.py")
    lines = converted.source.decode().splitlines()
    assert lines[0] == "from functools import reduce" and converted.line_map is not None
    assert [python2.original_line(converted.line_map, n) for n in (2, 3, 4)] == [1, 2, 3]


def test_lines_are_kept_when_nothing_is_added():
    converted = python2.convert(PY2_SCRIPT, "score.py")
    assert converted.line_map is None
    assert converted.source.decode().splitlines()[1] == "    print('rows', len(dataframe1))"


def test_a_latin_1_file_keeps_its_encoding():
    source = "# -*- coding: latin-1 -*-\ndef f():\n    print 'café'\n    return u'é'\n".encode("latin-1")
    converted = python2.convert(source, "score.py")
    assert "print('café')".encode("latin-1") in converted.source


def test_prepare_sources_detects_python_2_and_keeps_the_original():
    sources = python2.prepare_sources(PY2_SCRIPT, None, None)
    assert sources.conversion["python_version"] == "2.7" and not sources.conversion["declared"]
    assert sources.originals == {"original/score.py": PY2_SCRIPT}
    assert b"print('rows'" in sources.score_py
    assert len(sources.warnings) == 1 and sources.warnings[0].startswith("taken as Python 2.7: score.py:2 does not compile")


def test_a_python_2_bundle_module_makes_the_experiment_2_7():
    zipped = bundle.write_zip([("helper.py", b"def half(n):\n    return n / 2\n"),
                               ("pkg/__init__.py", b""), ("pkg/mod.py", b"import sibling\n"),
                               ("pkg/sibling.py", b"print 'x'\n"), ("data.csv", b"a\n1\n")])
    score = b"import helper\ndef azureml_main(df):\n    return df,\n"
    sources = python2.prepare_sources(score, zipped, None)
    assert sources.conversion is not None and "score.py" not in sources.originals
    files = bundle.read_zip(sources.bundle)
    assert files["helper.py"] == b"def half(n):\n    return __py2_div__(n, 2)\n"
    assert files["pkg/mod.py"] == b"from . import sibling\n"  # an implicit relative import inside a package
    assert files["data.csv"] == b"a\n1\n"
    assert bundle.read_zip(sources.originals["original/bundle.zip"])["helper.py"] == b"def half(n):\n    return n / 2\n"
    assert set(sources.conversion["files"]) == {"Script Bundle/helper.py", "Script Bundle/pkg/mod.py",
                                                "Script Bundle/pkg/sibling.py"}


def test_an_import_only_python_2_has_makes_a_file_2_7():
    sources = python2.prepare_sources(b"import urllib2\ndef azureml_main():\n    return urllib2.quote('a b')\n", None, None)
    assert sources.warnings[0].startswith("taken as Python 2.7: score.py:1 imports urllib2, which only Python 2 has;")
    assert b"urllib.parse.quote(" in sources.score_py


def test_declared_python_3_converts_nothing():
    sources = python2.prepare_sources(PY2_SCRIPT, None, "3")
    assert sources.conversion is None and sources.score_py == PY2_SCRIPT


def test_declared_2_7_converts_a_file_that_compiles_as_both():
    sources = python2.prepare_sources(b"def azureml_main(df):\n    df['h'] = len(df) / 2\n    return df\n", None, "2.7")
    assert b"__py2_div__(len(df), 2)" in sources.score_py and sources.conversion["declared"]


def test_a_score_py_that_is_neither_is_refused_by_the_script_check():
    with pytest.raises(ScriptError, match="score.py:1"):
        python2.convert(b"def f(:\n", "score.py")


@pytest.mark.parametrize("source, says", [
    (b"def azureml_main(df):\n    n = len(df)\n    df['h'] = n / 2\n    return df\n", "score.py:3: 'n / 2' divides integers"),
    (b"def azureml_main(df):\n    first = df.columns.map(str)\n    return zip(df.a, df.b)[0]\n", "score.py:3: 'zip(df.a, df.b)' is indexed"),
    (b"def azureml_main(df):\n    d = {}\n    return len(d.keys()), df\n", "score.py:3: len(d.keys())"),
])
def test_scripts_that_compile_as_both_get_one_warning_line(source, says):
    sources = python2.prepare_sources(source, None, None)
    assert sources.conversion is None and len(sources.warnings) == 1
    assert sources.warnings[0].startswith(says) and 'set "python_version"' in sources.warnings[0]


def test_no_warning_for_what_means_the_same():
    source = b"def azureml_main(df, n):\n    df['r'] = df['a'] / 2.0\n    df['s'] = df['a'] / n\n    for k in {}.keys():\n        pass\n    return df\n"
    assert python2.prepare_sources(source, None, None).warnings == []
    assert python2.prepare_sources(b"def azureml_main(df):\n    return len(df) / 2\n", None, "3").warnings == []


@pytest.mark.parametrize("label, version", [
    ("2.7", "2.7"), ("Anaconda 2.0/Python 2.7.7", "2.7"), ("Anaconda 4.0/Python 2.7.11", "2.7"), (2.7, "2.7"),
    ("3", "3"), ("Anaconda 4.0/Python 3.5", "3"), (3, "3"),
])
def test_schema_takes_the_classic_python_version_labels(label, version):
    schema = parse_schema({"inputs": {"input1": {"columns": []}}, "python_version": label})
    assert schema.python_version == version
    assert schema_to_document(schema).get("python_version", "3") == version


@pytest.mark.parametrize("document, says", [
    ({"python_version": "2.6"}, "python_version: Must be one of"),
    ({"python_version": True}, "python_version: Must be one of"),
    ({"compat": "pandas-0.18"}, "compat: Must be one of: classic, none"),
])
def test_schema_refuses_other_values(document, says):
    from publisher.errors import SchemaError

    with pytest.raises(SchemaError, match=says):
        parse_schema({"inputs": {}, **document})


def test_defaults_are_not_written_so_older_digests_stay():
    document = schema_to_document(parse_schema({"inputs": {}, "python_version": "3", "compat": "classic"}))
    assert "python_version" not in document and "compat" not in document
    assert schema_to_document(parse_schema({"inputs": {}, "compat": "none"}))["compat"] == "none"


def test_py2_div_is_plain_division_for_other_types():
    assert python2.py2_div(np.float64(3), 2) == 1.5
    assert python2.py2_div(np.array([3], dtype=np.int32), np.array([2], dtype=np.int32)).tolist() == [1]
    with pytest.raises(ZeroDivisionError):
        python2.py2_div(1, 0)


def test_write_zip_and_read_zip_round_trip():
    data = bundle.write_zip([("a.py", b"x = 1\n")])
    assert bundle.read_zip(data) == {"a.py": b"x = 1\n"}
    assert zipfile.ZipFile(io.BytesIO(data)).infolist()[0].date_time == bundle.FIXED_TIME


def test_a_long_python_3_expression_publishes_without_a_crash():
    source = b"x = " + b"1 + " * 1500 + b"1\ny = x / 2\ndef azureml_main(df):\n    return df\n"
    sources = python2.prepare_sources(source, None, None)
    assert sources.conversion is None and sources.score_py == source


@pytest.mark.parametrize("source", [
    b"x = " + b"(" * 3000 + b"1" + b")" * 3000 + b"\ndef azureml_main(df):\n    return df\n",
    b"def azureml_main(df):\n    return " + b"-" * 50000 + b"1\n",
])
def test_absurdly_nested_code_is_refused_in_one_line(source):
    with pytest.raises(ScriptError, match=r"^score.py: cannot be converted from Python 2.7 \(RecursionError"):
        python2.prepare_sources(source, None, None)


def test_too_much_python_2_source_is_refused_before_converting():
    big = b"print 'x'\n" + b"# padding\n" * (python2.MAX_CONVERT_BYTES // 10)
    with pytest.raises(ScriptError, match="at most 4194304 are converted at publish"):
        python2.prepare_sources(big, None, None)
