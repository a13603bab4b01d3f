"""Scripts written the classic way publish unchanged and give the classic answer.

Each test writes a small experiment folder in the idioms of Azure ML Studio (classic) scripts
(Python 2, the Script Bundle folder, Windows paths, pyplot state, pandas 0.18 APIs), publishes it
through the real publisher (conversion included) and calls it through the real sandboxed
runtime. Values are asserted, not only the absence of an error.
"""
from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path

import pytest

from publisher import artifact
from publisher.coercion import rows_to_table
from publisher.experiment import read_experiment
from serving.runtime.dispatcher import Runtime
from serving.runtime.errors import ScriptFailed

ONE_INT = {"inputs": {"input1": {"columns": [{"name": "a", "type": "integer"}]}}}


def experiment(tmp_path: Path, source: str | bytes, schema: dict = ONE_INT, bundle: dict | None = None) -> Path:
    folder = tmp_path / "experiment"
    folder.mkdir()
    data = source if isinstance(source, bytes) else textwrap.dedent(source).lstrip("\n").encode()
    (folder / "score.py").write_bytes(data)
    (folder / "schema.json").write_text(json.dumps(schema))
    for name, content in (bundle or {}).items():
        path = folder / "bundle" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else textwrap.dedent(content).lstrip("\n").encode())
    return folder


class Published:
    """An experiment folder as publishing freezes it, served by a runtime of its own."""

    def __init__(self, settings, folder: Path):
        self.settings = settings
        self.experiment = read_experiment(folder, settings)
        self.digest, archive = artifact.build("classic", self.experiment.members(), {}, {})
        self.runtime = Runtime(settings, {self.digest: archive}.__getitem__)

    @property
    def warnings(self) -> list[str]:
        return self.experiment.warnings

    def call(self, rows: list):
        schema = self.experiment.schema
        tables = [rows_to_table("input1", schema.inputs["input1"], rows, self.settings.max_rows)]
        return self.runtime.call(self.digest, schema, tables, {})

    def column(self, rows: list, name: str) -> list:
        result = self.call(rows)
        return result.output.to_frame()[name].tolist()


@pytest.fixture
def publish(settings):
    made = []

    def _publish(folder: Path) -> Published:
        made.append(Published(settings, folder))
        return made[-1]

    yield _publish
    for service in made:
        service.runtime.close()


# -- Python 2 -----------------------------------------------------------------------------------

PY2_TABS = (b"import pandas as pd\n"
            b"def azureml_main(dataframe1 = None, dataframe2 = None):\n"
            b"        total = 0\n"
            b"\tfor i in xrange(len(dataframe1)):\n"
            b"\t\ttotal += dataframe1['a'][i]\n"
            b"\tprint 'total is', total\n"
            b"\tdataframe1['tenths'] = dataframe1['a'] * 0 + total / 10\n"
            b"\tdataframe1['mean'] = total / len(dataframe1)\n"
            b"\treturn dataframe1,\n")


def test_a_python_2_script_with_tabs_print_and_integer_division(tmp_path, publish):
    service = publish(experiment(tmp_path, PY2_TABS))
    assert service.warnings[0].startswith("taken as Python 2.7: score.py:4 does not compile as Python 3")
    result = service.call([{"a": 7}, {"a": 28}])
    frame = result.output.to_frame()
    assert frame["tenths"].tolist() == [3, 3] and frame["mean"].tolist() == [17, 17]  # 35 / 10 and 35 / 2 floor
    assert result.log == "total is 35\n"


def test_the_artifact_keeps_the_original_and_the_conversion(tmp_path, publish):
    service = publish(experiment(tmp_path, PY2_TABS))
    members = service.experiment.members()
    assert members["original/score.py"] == PY2_TABS
    assert b"print('total is', total)" in members["score.py"]
    record = json.loads(members["conversion.json"])
    assert record["python_version"] == "2.7" and record["converter"].startswith("fissix ")
    assert json.loads(members["schema.json"])["python_version"] == "2.7"


def test_a_python_2_bundle_module(tmp_path, publish):
    folder = experiment(tmp_path, """
        import scaling
        def azureml_main(dataframe1 = None, dataframe2 = None):
            return scaling.halve(dataframe1),
        """, bundle={"scaling.py": """
        def halve(df):
            halves = []
            for value in df['a']:
                halves.append(int(value) / 2)
            df['half'] = halves
            print 'halved', len(halves), 'rows'
            return df
        """})
    service = publish(folder)
    assert "Script Bundle/scaling.py" in service.warnings[0]
    result = service.call([{"a": 5}, {"a": 9}])
    assert result.output.to_frame()["half"].tolist() == [2, 4] and "halved 2 rows" in result.log


def test_error_0085_names_the_published_line_and_shows_the_converted_one(tmp_path, publish):
    source = (b"def azureml_main(dataframe1 = None, dataframe2 = None):\n"
              b"    x = reduce(lambda a, b: a + b, dataframe1['a'])\n"
              b"    print 'sum', x\n"
              b"    return int(x) / 0,\n")
    service = publish(experiment(tmp_path, source))
    with pytest.raises(ScriptFailed) as info:
        service.call([{"a": 1}])
    # a fixer added "from functools import reduce" as line 1: the line shown is still line 4
    assert str(info.value) == "score.py:4: ZeroDivisionError: integer division or modulo by zero"
    tb = info.value.traceback
    assert 'File "score.py", line 4, in azureml_main' in tb
    assert "    return int(x) / 0,\n" in tb
    assert "(converted to Python 3: return __py2_div__(int(x), 0),)" in tb


# -- the Script Bundle folder, Windows paths ------------------------------------------------------

def test_a_pickled_model_opened_the_windows_way(tmp_path, publish):
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])  # y = 2x + 1
    folder = experiment(tmp_path, """
        import pickle
        import pandas as pd
        def azureml_main(dataframe1 = None, dataframe2 = None):
            model = pickle.load(open('.\\\\Script Bundle\\\\model.pkl', 'rb'))
            dataframe1['prediction'] = model.predict(dataframe1[['a']].astype(float).values)
            return dataframe1,
        """, bundle={"model.pkl": pickle.dumps(model)})
    assert publish(folder).column([{"a": 3}, {"a": 10}], "prediction") == pytest.approx([7.0, 21.0])


def test_paths_built_at_run_time_and_at_load_time(tmp_path, publish):
    folder = experiment(tmp_path, """
        import os
        import pandas as pd
        LOADED = pd.read_csv('Script Bundle\\\\rates.csv')          # module level: the template's folder
        def azureml_main(dataframe1 = None, dataframe2 = None):
            name = 'rates' + '.csv'
            built = pd.read_csv('.\\\\Script Bundle\\\\' + name)
            joined = pd.read_csv(os.path.join('Script Bundle', name))
            here = sorted(os.listdir('.'))
            found = os.path.exists('Script Bundle\\\\' + name) and os.path.isfile('./Script Bundle/rates.csv')
            dataframe1['n'] = len(LOADED) + len(built) + len(joined)
            dataframe1['here'] = ','.join(here)
            dataframe1['found'] = found
            dataframe1['env'] = os.path.samefile(os.environ['SCRIPT_BUNDLE'], 'Script Bundle')
            return dataframe1,
        """, bundle={"rates.csv": "k,v\na,1\nb,2\n"})
    frame = publish(folder).call([{"a": 1}]).output.to_frame()
    assert frame.iloc[0].to_dict() == {"a": 1, "n": 6, "here": "Script Bundle", "found": True, "env": True}


def test_the_script_bundle_is_read_only(tmp_path, publish):
    folder = experiment(tmp_path, """
        def azureml_main(dataframe1 = None, dataframe2 = None):
            outcome = []
            for attempt in (lambda: open('Script Bundle/data.txt', 'w'), lambda: open('Script Bundle/new.txt', 'w')):
                try:
                    attempt()
                    outcome.append('written')
                except OSError:
                    outcome.append('refused')
            dataframe1['outcome'] = ','.join(outcome)
            dataframe1['data'] = open('.\\\\Script Bundle\\\\data.txt').read()
            return dataframe1,
        """, bundle={"data.txt": "kept"})
    assert publish(folder).call([{"a": 1}]).output.to_frame().iloc[0].tolist() == [1, "refused,refused", "kept"]


def test_an_existing_name_with_a_backslash_is_not_translated(tmp_path, publish):
    folder = experiment(tmp_path, """
        def azureml_main(dataframe1 = None, dataframe2 = None):
            with open('odd\\\\name.txt', 'w') as f:
                f.write('one')
            with open('odd\\\\name.txt', 'a') as f:   # exists as given: opened as given
                f.write('two')
            import os
            dataframe1['files'] = ','.join(sorted(os.listdir('.')))
            return dataframe1,
        """)
    assert publish(folder).column([{"a": 1}], "files") == ["Script Bundle,odd\\name.txt"]


# -- plots --------------------------------------------------------------------------------------

PLOTTER = """
    import matplotlib
    matplotlib.use('TkAgg')       # classic scripts asked for backends this server cannot have
    import matplotlib.pyplot as plt
    def azureml_main(dataframe1 = None, dataframe2 = None):
        plt.plot(dataframe1['a'])
        plt.savefig('plot.png')
        dataframe1['lines'] = len(plt.gca().lines)
        dataframe1['backend'] = matplotlib.get_backend().lower()
        return dataframe1,
    """


def test_a_warm_service_plotting_three_times_gets_three_single_line_figures(tmp_path, publish):
    service = publish(experiment(tmp_path, PLOTTER))
    results = [service.call([{"a": 1}, {"a": 3}]) for _ in range(3)]
    assert [r.output.to_frame()["lines"].tolist() for r in results] == [[1, 1]] * 3
    assert {r.output.to_frame()["backend"][0] for r in results} == {"agg"}
    pngs = [r.plots[0][1] for r in results]
    assert pngs[0][:8] == b"\x89PNG\r\n\x1a\n" and pngs[0] == pngs[1] == pngs[2]


def test_pandas_tools_plotting_scatter_matrix(tmp_path, publish):
    schema = {"inputs": {"input1": {"columns": [{"name": "a", "type": "double"}, {"name": "b", "type": "double"}]}}}
    folder = experiment(tmp_path, """
        import matplotlib
        matplotlib.use('agg')
        import pandas as pd
        from pandas.tools.plotting import scatter_matrix
        import matplotlib.pyplot as plt
        def azureml_main(dataframe1 = None, dataframe2 = None):
            axes = scatter_matrix(dataframe1, figsize=(4, 4))
            plt.savefig('scatter.png')
            return pd.DataFrame({'axes': [axes.size]}),
        """, schema)
    service = publish(folder)
    assert any("pandas.tools.plotting" in w for w in service.warnings)
    result = service.call([{"a": 1.0, "b": 2.0}, {"a": 2.0, "b": 1.0}, {"a": 3.0, "b": 5.0}])
    assert result.output.to_frame()["axes"].tolist() == [4]
    assert [name for name, _ in result.plots] == ["scatter.png"]


# -- where an error is ----------------------------------------------------------------------------

def test_a_library_error_names_the_innermost_line_of_the_users_code(tmp_path, publish):
    folder = experiment(tmp_path, """
        import helpers
        def azureml_main(dataframe1 = None, dataframe2 = None):
            return helpers.pick(dataframe1),
        """, bundle={"helpers.py": """
        def pick(df):
            return df[['a', 'no such column']]
        """})
    with pytest.raises(ScriptFailed) as info:
        publish(folder).call([{"a": 1}])
    assert str(info.value).startswith("Script Bundle/helpers.py:2: KeyError: ")
    assert "site-packages" not in str(info.value)


def test_the_publish_smoke_call_names_the_score_py_line(tmp_path, settings):
    from publisher.errors import PublishError
    from publisher.registry import Registry
    from publisher.artifact_store import FolderArtifactStore
    from publisher.publish import publish as publish_folder
    from serving.smoke import smoke_call

    folder = experiment(tmp_path, """
        import pandas as pd
        def azureml_main(dataframe1 = None, dataframe2 = None):
            frame = dataframe1.copy()
            return frame.sort_values('no such column'),
        """)
    (folder / "sample.json").write_text(json.dumps({"input1": [{"a": 1}]}))
    registry = Registry(settings.database_url)
    try:
        with pytest.raises(PublishError) as info:
            publish_folder(folder, "smoked", settings=settings, registry=registry,
                           store=FolderArtifactStore(settings.artifact_dir), smoke=smoke_call(settings))
    finally:
        registry.dispose()
    assert "smoke call with sample.json failed: score.py:4: KeyError: 'no such column'" in str(info.value)


# -- what publishing reports, and scorepub migrate ------------------------------------------------

CLASSIC_API_SCRIPT = b"""import pandas as pd
def azureml_main(dataframe1 = None, dataframe2 = None):
    x = reduce(lambda a, b: a + b, [1, 2])
    print 'total', x
    frame = dataframe1.sort(columns='a', ascending=False)
    first = frame.ix[0, 'a']
    values = frame.as_matrix()
    frame['first'] = first
    frame['half'] = len(values) / 2
    frame['pos'] = frame.ix[:, 0]
    return frame,
"""


def test_publishing_reports_each_classic_api_once_at_the_published_line(tmp_path, publish):
    service = publish(experiment(tmp_path, CLASSIC_API_SCRIPT))
    uses = [w for w in service.warnings if "→" in w]
    # line numbers of the file as published, although conversion added "from functools import reduce"
    assert uses[:3] == ["score.py:5: DataFrame.sort → .sort_values(by=...)", "score.py:6: DataFrame.ix → .loc/.iloc",
                        "score.py:7: DataFrame.as_matrix → .values"]
    assert [u.split(":")[1] for u in uses].count("6") == 1 and any(u.startswith("score.py:10:") for u in uses)


def test_with_compat_none_publishing_says_the_calls_will_fail(tmp_path, settings):
    folder = experiment(tmp_path, CLASSIC_API_SCRIPT, {**ONE_INT, "compat": "none"})
    warnings = read_experiment(folder, settings).warnings
    assert 'score.py:6: DataFrame.ix → .loc/.iloc (compat is "none": this call will fail)' in warnings


def test_migrate_writes_a_modern_copy_that_gives_the_same_answer(tmp_path, publish):
    from conftest import cli, cli_env

    folder = experiment(tmp_path, CLASSIC_API_SCRIPT)
    rows = [{"a": 3}, {"a": 9}, {"a": 5}]
    classic = publish(folder).call(rows).output.to_frame()
    out = tmp_path / "modern"
    proc = cli("migrate", str(folder), "--out", str(out), env=cli_env(tmp_path / "home"))
    assert "-    frame = dataframe1.sort(columns='a', ascending=False)" in proc.stdout
    assert "+    frame = dataframe1.sort_values(by='a', ascending=False)" in proc.stdout
    assert proc.stdout.rstrip().endswith("converted from Python 2.7)")
    assert (folder / "score.py").read_bytes() == CLASSIC_API_SCRIPT  # the original is left alone
    modern_source = (out / "score.py").read_text()
    assert "print('total', x)" in modern_source and "(len(values) // 2)" in modern_source
    assert ".ix[" not in modern_source and "as_matrix" not in modern_source
    schema = json.loads((out / "schema.json").read_text())
    assert schema["python_version"] == "3"
    schema["compat"] = "none"  # the modern copy needs no compatibility layer
    (out / "schema.json").write_text(json.dumps(schema))
    modern = publish(out)
    assert not any("→" in w for w in modern.warnings)
    assert modern.call(rows).output.to_frame().equals(classic)
    again = cli("migrate", str(folder), "--out", str(out), env=cli_env(tmp_path / "home"), check=False)
    assert again.returncode == 1 and "exists already" in again.stderr


def test_the_classic_package_set_imports_and_works_in_the_sandbox(tmp_path, publish):
    schema = {"inputs": {"input1": {"columns": [{"name": "x", "type": "double"}, {"name": "y", "type": "double"}]}}}
    folder = experiment(tmp_path, """
        import numpy as np
        import pandas as pd
        import scipy.stats
        import seaborn as sns
        import statsmodels.api as sm
        import nltk
        from nltk.stem.porter import PorterStemmer
        import pyriemann
        from sklearn.linear_model import LinearRegression

        def azureml_main(dataframe1 = None, dataframe2 = None):
            fit = sm.OLS(dataframe1['y'], sm.add_constant(dataframe1['x'])).fit()
            sk = LinearRegression().fit(dataframe1[['x']], dataframe1['y'])
            sns.regplot(x='x', y='y', data=dataframe1).get_figure().savefig('reg.png')
            return pd.DataFrame({'slope': [round(fit.params['x'], 6)], 'sk': [round(float(sk.coef_[0]), 6)],
                                 'r': [round(scipy.stats.pearsonr(dataframe1['x'], dataframe1['y'])[0], 6)],
                                 'stem': [PorterStemmer().stem('running')]}),
        """, schema)
    result = publish(folder).call([{"x": 0.0, "y": 1.0}, {"x": 1.0, "y": 3.0}, {"x": 2.0, "y": 5.0}])
    assert result.output.to_frame().iloc[0].to_dict() == {"slope": 2.0, "sk": 2.0, "r": 1.0, "stem": "run"}
    assert [name for name, _ in result.plots] == ["reg.png"]


def test_links_a_script_leaves_never_make_the_server_chmod_anything(tmp_path, settings):
    import os
    import stat

    victim = tmp_path / "victim"
    victim.mkdir()
    os.chmod(victim, 0o1777)
    folder = experiment(tmp_path, f"""
        import os
        def azureml_main(dataframe1 = None, dataframe2 = None):
            os.symlink({str(victim)!r}, os.path.join(os.environ['HOME'], 'x'))
            os.symlink({str(victim)!r}, 'y')
            return dataframe1,
        """, bundle={"data.txt": "read-only"})
    service = Published(settings, folder)
    try:
        assert service.call([{"a": 1}]).output.to_frame()["a"].tolist() == [1]
    finally:
        service.runtime.close()  # removes the pool's folder, read-only bundle included
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o1777
    assert not any(Path(settings.run_dir).glob("p-*"))


def test_migrate_refuses_in_one_line(tmp_path):
    from conftest import cli, cli_env

    folder = experiment(tmp_path, "def azureml_main(dataframe1 = None):\n    return dataframe1,\n")
    (folder / "bundle.zip").write_bytes(b"not a zip")
    env = cli_env(tmp_path / "home")
    bad = cli("migrate", str(folder), env=env, check=False)
    assert bad.returncode == 1 and bad.stderr.strip() == f"error: {folder}/bundle.zip: not a zip file"
    (folder / "bundle.zip").unlink()
    here = subprocess_in(folder, "migrate", ".", env=env)  # a real process: "." is its working folder
    assert here.returncode == 0 and (tmp_path / "experiment-modern" / "score.py").is_file(), here.stderr


def subprocess_in(cwd: Path, *args, env: dict):
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    return subprocess.run([sys.executable, "-m", "serving.cli", *args], cwd=cwd, env={**env, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=300)
