"""scorepub_sandbox: what runs in the sandbox imports nothing of the server, and runs under another
Python environment's interpreter (issue 13).

A version may get a Python environment of its own (a venv holding, say, pandas 1.5.3 and numpy
1.26, and none of flask, marshmallow, sqlalchemy... nor publisher/serving). Its fork server,
templates and workers then run under that interpreter, so they must need nothing but the sandbox
package. Checked here on real processes: what the fork server and a worker that served a call have
in sys.modules, and real calls through a uv-built pandas 1.5.3 environment.
"""
from __future__ import annotations

import ast
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import pytest

from conftest import ROOT
from scorepub_sandbox import launch
from serving.runtime.dispatcher import Runtime
from test_pool_host import ONE_PORT, call, frozen

PACKAGE = ROOT / "scorepub_sandbox"
# what a version's environment does not hold
SERVER_SIDE = {"publisher", "serving", "flask", "werkzeug", "marshmallow", "sqlalchemy", "click", "packaging",
               "fissix", "libcst", "prometheus_client", "alembic"}
# what the sandbox may import at module level (matplotlib only lazily, where it is installed)
THIRD_PARTY = {"numpy", "pandas", "orjson", "pyseccomp"}


def imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level module, at module level?) of every absolute import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name.split(".")[0], id(node) not in nested) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], id(node) not in nested))
    return found


def server_side(modules) -> list[str]:
    """The server-side modules among ``modules``; packaging is matplotlib's own dependency, so it
    counts only where matplotlib is not loaded (a version's environment without matplotlib)."""
    roots = {m.split(".")[0] for m in modules}
    unexpected = SERVER_SIDE - ({"packaging"} if "matplotlib" in roots else set())
    return sorted(m for m in modules if m.split(".")[0] in unexpected)


def preloaded(python: str) -> list[str]:
    """sys.modules of a fork server of ``python`` once it has preloaded (``forkserver --modules``)."""
    proc = subprocess.run(launch.command(python, "forkserver", "--modules"), capture_output=True, timeout=120,
                          cwd="/", env={"PATH": os.environ.get("PATH", ""), "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr.decode()
    return orjson.loads(proc.stdout)


def rows_of(result) -> list[dict]:
    return result.output.to_rows()


# -- the package alone ---------------------------------------------------------------------------

def test_no_module_of_the_package_imports_the_server_side():
    offenders, module_level = {}, {}
    for path in sorted(PACKAGE.glob("*.py")):
        found = imports(path)
        bad = sorted({name for name, _ in found if name in SERVER_SIDE})
        if bad:
            offenders[path.name] = bad
        other = sorted({name for name, top in found
                        if top and name not in sys.stdlib_module_names and name not in THIRD_PARTY})
        if other:
            module_level[path.name] = other
    assert offenders == {}
    assert module_level == {}  # matplotlib, scipy...: only inside functions, where a script needs them


def test_importing_the_launcher_has_no_side_effects():
    code = ("import sys, orjson, scorepub_sandbox.launch;"
            "print(orjson.dumps(sorted(m for m in sys.modules if m.startswith(('scorepub_sandbox', 'numpy')))).decode())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert orjson.loads(proc.stdout) == ["scorepub_sandbox", "scorepub_sandbox.launch"]
    argv = launch.command("/some/python", "forkserver", 7)
    assert argv[:4] == ["/some/python", "-I", "-c", launch.BOOT] and argv[4:] == [str(PACKAGE), "forkserver", "7"]


def test_a_fork_server_preloads_none_of_the_server_packages():
    modules = preloaded(sys.executable)
    assert server_side(modules) == []
    assert {"numpy", "pandas", "scorepub_sandbox.template", "scorepub_sandbox.worker"} <= set(modules)


def test_a_worker_that_served_a_call_holds_none_of_the_server_packages(settings):
    """A worker is forked from its template after the artifact was verified, the bundle unpacked
    and score.py imported, and the template from the fork server: what it holds, they held."""
    digest, archive = frozen("""
        import os, sys
        import pandas as pd
        import scorepub_sandbox

        def azureml_main(df):
            def listable(path):
                try:
                    os.listdir(path)
                    return True
                except OSError:
                    return False
            here = os.path.dirname(scorepub_sandbox.__file__)
            return pd.DataFrame({"module": sorted(sys.modules), "package": here,
                                 "package_readable": listable(here),
                                 "publisher_readable": listable(os.path.join(os.path.dirname(here), "publisher"))}),
    """)
    runtime = Runtime(dataclasses.replace(settings, pool_size=1), {digest: archive}.__getitem__)
    try:
        rows = rows_of(call(runtime, digest, [{"x": 1}]))
    finally:
        runtime.close()
    modules = [r["module"] for r in rows]
    assert server_side(modules) == []
    assert {"scorepub_sandbox.template", "scorepub_sandbox.worker", "score"} <= set(modules)
    assert rows[0]["package"] == str(PACKAGE)  # loaded by the bootstrap from scorepub's install folder
    assert rows[0]["package_readable"]  # Landlock lets a worker read the package it imports lazily from
    assert not rows[0]["publisher_readable"]  # but nothing else of scorepub's install


# -- a version's own environment: pandas 1.5.3 and numpy 1.26 -----------------------------------------

@pytest.fixture(scope="module")
def pandas15():
    """A venv built with uv on this server's Python, holding only what a version's environment
    holds (pandas 1.5.3, numpy < 2, orjson, pyseccomp; no matplotlib). uv's own cache
    (~/.cache/uv) is kept between runs, so only the first one downloads."""
    uv = shutil.which("uv", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if uv is None:
        pytest.skip("uv is not installed (pip install uv)")
    folder = Path(tempfile.mkdtemp(prefix="scorepub-env-"))
    folder.chmod(0o755)  # as root, the sandbox uids must reach the interpreter and its libraries
    venv = folder / "pandas15"
    try:
        for argv in ([uv, "venv", "--quiet", str(venv), "--python", sys.executable],
                     [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "pandas==1.5.3",
                      "numpy<2", "orjson", "pyseccomp"]):
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{' '.join(argv)}:\n{proc.stdout}\n{proc.stderr}"
        yield str(venv / "bin" / "python")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def old_runtime(settings, pandas15):
    """``old_runtime(source, schema)``: (runtime, digest), the version run under pandas 1.5."""
    made = []

    def make(source: str, schema: dict = ONE_PORT):
        digest, archive = frozen(source, schema)
        made.append(Runtime(dataclasses.replace(settings, pool_size=1), {digest: archive}.__getitem__,
                            python_for=lambda art: pandas15))
        return made[-1], digest

    yield make
    for runtime in made:
        runtime.close()


def test_the_environments_fork_server_preloads_only_the_sandbox(pandas15):
    modules = preloaded(pandas15)
    assert server_side(modules) == [] and "packaging" not in modules
    assert "pandas" in modules and not [m for m in modules if m.split(".")[0] == "matplotlib"]


def test_a_version_runs_under_its_environments_pandas_1_5(old_runtime, pandas15):
    runtime, digest = old_runtime("""
        import importlib.util, sys
        import numpy as np
        import pandas as pd

        def azureml_main(df):
            both = df.append(df, ignore_index=True)  # pandas 1.5's own (gone in pandas 2)
            return pd.DataFrame({"pandas": [pd.__version__], "numpy": [np.__version__], "prefix": [sys.prefix],
                                 "rows": [len(both)], "append": [pd.DataFrame.append.__module__],
                                 "findable": [[m for m in ("publisher", "serving", "flask", "marshmallow",
                                                           "matplotlib") if importlib.util.find_spec(m)]]}),
    """, {**ONE_PORT, "compat": "none"})
    [row] = rows_of(call(runtime, digest, [{"x": 1}]))
    assert row["pandas"] == "1.5.3" and row["numpy"].startswith("1.26.")
    assert row["prefix"] == str(Path(pandas15).parent.parent)
    assert row["rows"] == 2 and row["append"] == "pandas.core.frame"
    assert row["findable"] == "[]"  # none of the server's packages, and no matplotlib: Agg set-up skipped
    assert len(runtime.spawners) == 2 and runtime.spawners[pandas15].python == pandas15


def test_the_classic_layer_on_pandas_1_5(old_runtime):
    """compat "classic": 1.5's own DataFrame.append and fillna(method=) stay its own (no double
    patch, no recursion through pandas' ffill), what 1.5 lacks (.ix, pd.rolling_mean, np.float)
    is added."""
    runtime, digest = old_runtime("""
        import numpy as np
        import pandas as pd

        def azureml_main(df):
            frame = pd.DataFrame({"a": [1.0, None, 3.0], "b": [4, 5, 6]}, index=[10, 20, 30])
            out = frame.append(frame.iloc[:1], ignore_index=True)
            return pd.DataFrame({
                "ix": [frame.ix[20, "b"]],
                "rolling_mean": [pd.rolling_mean(frame["b"], 2).tolist()[-1]],
                "rolling_quantile": [pd.rolling_quantile(frame["b"], 2, 0.5).tolist()[-1]],
                "np_float": [np.float is float and np.bool is bool],
                "ffill": [frame.fillna(method="ffill")["a"].tolist()],
                "drop_positional": [frame.drop("a", 1).columns.tolist()],
                "rows": [len(out)],
                "append_native": [not getattr(pd.DataFrame.append, "__classic_compat__", False)
                                  and pd.DataFrame.append.__module__ == "pandas.core.frame"],
            }),
    """)
    [row] = rows_of(call(runtime, digest, [{"x": 1}]))
    assert row == {"ix": 5, "rolling_mean": 5.5, "rolling_quantile": 5.5, "np_float": True,
                   "ffill": "[1.0, 1.0, 3.0]", "drop_positional": "['b']", "rows": 4, "append_native": True}


def test_output_translation_and_datetimes_on_pandas_1_5(old_runtime):
    schema = {"inputs": {"input1": {"columns": [{"name": "t", "type": "datetime", "nullable": True},
                                                 {"name": "n", "type": "integer", "nullable": True}]}}}
    runtime, digest = old_runtime("""
        import numpy as np
        import pandas as pd

        def azureml_main(df):
            df["utc"] = df["t"].dt.tz_localize("Europe/Paris")
            df["n2"] = df["n"] * 2
            df["flag"] = pd.array([True, None], dtype="boolean")
            df["ratio"] = [1.5, np.inf]
            df["kind"] = pd.Categorical(["a", "b"])
            df["when"] = [pd.Timestamp("2016-01-02 03:04:05"), pd.NaT]
            return df.set_index("kind", drop=False),
    """, schema)
    result = call(runtime, digest, [{"t": "2016-07-01T12:00:00", "n": 4}, {"t": None, "n": None}], schema)
    assert rows_of(result) == [
        {"t": "2016-07-01T12:00:00", "n": 4, "utc": "2016-07-01T10:00:00", "n2": 8, "flag": True, "ratio": 1.5,
         "kind": "a", "when": "2016-01-02T03:04:05"},
        {"t": None, "n": None, "utc": None, "n2": None, "flag": None, "ratio": None, "kind": "b", "when": None}]
    assert [c.type for c in result.output.columns] == ["datetime", "integer", "datetime", "integer", "boolean",
                                                       "double", "string", "datetime"]
    assert result.notes == ["the returned index (CategoricalIndex) was dropped", "column 'ratio': inf/-inf returned as null"]


def test_one_runtime_serves_versions_under_two_interpreters(settings, pandas15):
    script = "import pandas as pd\n\ndef azureml_main(df):\n    return pd.DataFrame({'pandas': [pd.__version__]}),\n"
    new_digest, new_archive = frozen(script)
    old_digest, old_archive = frozen(script + "# the same script, published for the old environment\n")
    archives = {new_digest: new_archive, old_digest: old_archive}
    runtime = Runtime(dataclasses.replace(settings, pool_size=1), archives.__getitem__,
                      python_for=lambda art: pandas15 if art.digest == old_digest else sys.executable)
    try:
        import pandas

        assert rows_of(call(runtime, old_digest, [{"x": 1}])) == [{"pandas": "1.5.3"}]
        assert rows_of(call(runtime, new_digest, [{"x": 1}])) == [{"pandas": pandas.__version__}]
        assert runtime.spawner_for(pandas15) is runtime.spawners[pandas15]  # one fork server per interpreter
        servers = {python: spawner._proc.pid for python, spawner in runtime.spawners.items()}
        assert len(set(servers.values())) == 2
        assert Path(f"/proc/{servers[pandas15]}/cmdline").read_bytes().split(b"\0")[:2] == [pandas15.encode(), b"-I"]
        homes = [spawner.cwd for spawner in runtime.spawners.values()]
    finally:
        runtime.close()
    assert homes and not any(home.exists() for home in homes)
