"""Publish-time checks of score.py (contract.md, "The script")."""
from __future__ import annotations

import textwrap

import pytest

from publisher.errors import ScriptError
from publisher.script_check import check_script


def src(text: str) -> bytes:
    return textwrap.dedent(text).lstrip("\n").encode()


def refused(text: str, n_ports: int = 1, filename: str = "score.py") -> str:
    with pytest.raises(ScriptError) as info:
        check_script(src(text), n_ports, filename)
    return str(info.value)


# -- does not compile ---------------------------------------------------------------------

def test_syntax_error_names_file_and_line():
    message = refused("""
        import pandas as pd

        def azureml_main(df1):
            return df1,,
    """)
    assert message.startswith("score.py:4: SyntaxError")


def test_indentation_error_names_file_and_line():
    message = refused("""
        def azureml_main(df1):
        return df1
    """)
    assert message.startswith("score.py:2: IndentationError")


def test_compile_time_error_beyond_the_parser():
    # valid grammar, refused by the compiler: 'return' outside a function
    message = refused("""
        x = 1
        return x
        def azureml_main(df1):
            return df1,
    """)
    assert message.startswith("score.py:2:") and "return" in message


def test_nul_byte_refused():
    with pytest.raises(ScriptError, match="score.py"):
        check_script(b"def azureml_main(df1):\n    return df1\x00\n", 1)


def test_other_filename_is_named():
    message = refused("def azureml_main(df1)\n    pass\n", filename="entry.py")
    assert message.startswith("entry.py:1:")


# -- no azureml_main ----------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "",
    "import pandas as pd\n",
    "def azureml_mian(df1):\n    return df1,\n",
    "def helper():\n    def azureml_main(df1):\n        return df1,\n    return azureml_main\n",
    "class Service:\n    def azureml_main(self, df1):\n        return df1,\n",
])
def test_no_azureml_main_refused(text):
    message = refused(text)
    assert message == "score.py: defines no function azureml_main at module level"


# -- arity against the number of ports ----------------------------------------------------

@pytest.mark.parametrize("signature, n_ports", [
    ("", 0),
    ("df1=None, df2=None", 0),
    ("*args", 0),
    ("**kwargs", 0),
    ("df1", 1),
    ("df1, df2=None", 1),
    ("dataframe1=None, dataframe2=None", 1),
    ("*frames", 1),
    ("df1, *rest, **kw", 1),
    ("df1, df2", 2),
    ("df1, /, df2", 2),
    ("df1=None, df2=None", 2),
    ("df1, *args", 2),
    ("*args", 2),
    ("df1, df2, *, option=3", 2),
])
def test_signature_accepted(signature, n_ports):
    check_script(src(f"def azureml_main({signature}):\n    return None\n"), n_ports)


@pytest.mark.parametrize("signature, n_ports, fragment", [
    ("df1", 0, "requires 1 positional argument(s) but the schema declares 0 input port(s)"),
    ("df1, df2=None", 0, "requires 1 positional"),
    ("", 1, "accepts 0 positional argument(s) but the schema declares 1 input port(s)"),
    ("**kwargs", 1, "accepts 0 positional"),
    ("df1", 2, "accepts 1 positional argument(s) but the schema declares 2 input port(s)"),
    ("df1, df2, df3", 2, "requires 3 positional"),
    ("df1, df2, df3=None, *, k", 2, "keyword-only parameter(s) without defaults (k)"),
    ("*, k", 0, "keyword-only parameter(s) without defaults (k)"),
    ("*args, k, j=1, m", 1, "keyword-only parameter(s) without defaults (k, m)"),
])
def test_signature_refused(signature, n_ports, fragment):
    message = refused(f"import pandas\n\n\ndef azureml_main({signature}):\n    return None\n", n_ports)
    assert message.startswith("score.py:4: azureml_main ")
    assert fragment in message


def test_async_def_refused():
    message = refused("""
        import asyncio

        async def azureml_main(df1):
            return df1,
    """)
    assert message == "score.py:3: azureml_main must be a plain function, not async"


def test_last_definition_wins():
    # the second def replaces the first when the module runs
    check_script(src("""
        def azureml_main():
            return None

        def azureml_main(df1):
            return df1,
    """), 1)
    message = refused("""
        def azureml_main(df1):
            return df1,

        def azureml_main():
            return None
    """)
    assert message.startswith("score.py:4:")


# -- bound by import or assignment: checked at load time ----------------------------------

@pytest.mark.parametrize("text", [
    "from mylib.scoring import azureml_main\n",
    "from mylib import entry as azureml_main\n",
    "import azureml_main\n",
    "azureml_main = lambda df1: (df1,)\n",
    "def _impl(df1):\n    return df1,\n\nazureml_main = _impl\n",
    "from typing import Callable\nazureml_main: Callable = print\n",
    "class azureml_main:\n    def __init__(self, df1):\n        self.df = df1\n",
])
def test_azureml_main_bound_otherwise_is_accepted(text):
    for n_ports in (0, 1, 2):
        check_script(src(text), n_ports)


def test_def_rebound_by_assignment_is_not_checked_statically():
    # wrapped by a decorator-like call: the real signature is only known at load time
    check_script(src("""
        import functools

        def azureml_main():
            return None

        azureml_main = functools.partial(azureml_main)
    """), 2)


def test_import_then_bad_def_is_checked():
    message = refused("""
        from mylib import azureml_main

        def azureml_main():
            return None
    """, n_ports=2)
    assert message.startswith("score.py:3: azureml_main accepts 0 positional")


def test_example_scripts_pass():
    from pathlib import Path

    examples = Path(__file__).resolve().parent.parent / "examples"
    ports = {"expression-evaluator": 1, "feature-importance": 1, "hello-bundle": 1, "two-inputs": 2}
    for name, n in ports.items():
        check_script((examples / name / "score.py").read_bytes(), n)


def test_azureml_main_defined_inside_a_top_level_if_or_try_is_found():
    check_script(src("""
        try:
            import numpy
        except ImportError:
            pass
        if True:
            def azureml_main(df1):
                return df1,
    """), 1)
    assert "requires 2" in refused("""
        if True:
            def azureml_main(a, b):
                return a,
    """, n_ports=1)
