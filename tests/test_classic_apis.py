"""publisher/classic_apis.py: scan() finds the pandas 0.18 / numpy 1.11 APIs a script uses, and
modernize() rewrites them so that plain modern pandas computes what the original computed.

The originals run in a child process with serving/runtime/classic_compat installed (it patches
pandas for the whole process); the modernized versions run here, in plain pandas.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from publisher.classic_apis import MIGRATE_IX, Use, modernize, scan

ROOT = Path(__file__).resolve().parent.parent


def uses(source: str) -> list[tuple[int, str]]:
    return [(u.line, u.old) for u in scan(textwrap.dedent(source))]


# -- scan ----------------------------------------------------------------------------------------------

IDIOMS = textwrap.dedent("""\
    import pandas as pd
    import numpy as np
    from pandas.tools.plotting import scatter_matrix

    def azureml_main(dataframe1=None, dataframe2=None):
        a = dataframe1.ix[0, 'a']
        m = dataframe1.as_matrix()
        v = dataframe1.get_value(0, 'a')
        dataframe1.set_value(0, 'a', 1)
        c = dataframe1.convert_objects(convert_numeric=True)
        r = pd.rolling_mean(dataframe1.a, 3)
        e = pd.ewma(dataframe1.a, span=3)
        t = pd.datetime(2016, 1, 1)
        z = pd.np.zeros(2)
        f = np.float(1) + np.NaN
        for k, col in dataframe1.iteritems():
            pass
        s = dataframe1.sort_index(by='a')
        d = dataframe1.drop('a', 1)
        row = dataframe1.irow(0)
        l = dataframe1.lookup([0], ['a'])
        df = dataframe1[['a']]
        df2 = df.sort('a')
        df3 = df.append(dataframe2)
        df['a'][0] = 5
        df.a[1] = 6
        filled = df.fillna(method='ffill')
        return df
""")
EXPECTED = [
    (3, "pandas.tools.plotting"), (6, "DataFrame.ix"), (7, "DataFrame.as_matrix"), (8, "DataFrame.get_value"),
    (9, "DataFrame.set_value"), (10, "DataFrame.convert_objects"), (11, "pd.rolling_mean"), (12, "pd.ewma"),
    (13, "pd.datetime"), (14, "pd.np"), (15, "np.float"), (15, "np.NaN"), (16, ".iteritems"),
    (18, "DataFrame.sort_index(by=)"), (19, "DataFrame.drop(labels, axis) positional"), (20, "DataFrame.irow"),
    (21, "DataFrame.lookup"), (23, "DataFrame.sort"), (24, "DataFrame.append"),
    (25, "chained assignment df['a'][0] = ..."), (26, "chained assignment df.a[1] = ..."), (27, "fillna(method=)"),
]


def test_scan_reports_each_idiom_with_its_line():
    assert [(u.line, u.old) for u in scan(IDIOMS)] == EXPECTED


def test_use_is_frozen_and_prints_like_a_compiler_message():
    first = scan(IDIOMS, "bundle/score.py")[1]
    assert first == Use("bundle/score.py", 6, "DataFrame.ix", ".loc/.iloc")
    assert str(first) == "bundle/score.py:6: DataFrame.ix → .loc/.iloc"
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.line = 1
    chained = [u for u in scan(IDIOMS) if u.old.startswith("chained")]
    assert str(chained[0]) == "score.py:25: chained assignment df['a'][0] = ... → df.loc[0, 'a'] = ..."


def test_plain_lists_and_arrays_are_not_reported():
    assert uses("""
        import numpy as np
        import pandas as pd

        def azureml_main(dataframe1=None, dataframe2=None):
            rows = []
            for i in range(3):
                rows.append(i)
            rows.sort()
            rows.sort(key=abs, reverse=True)
            arr = np.array([3, 1, 2])
            arr.sort(axis=0, kind='mergesort')
            frames = []
            frames.append(dataframe1)            # a list, although it holds frames
            result = pd.concat(frames)
            rows = [1]
            rows.append(2)
            vals = dataframe1['a'].unique()      # an ndarray: its sort() is modern numpy
            vals.sort()
            for k, v in six.iteritems({}):       # a module's function, not a method
                pass
            return result
    """.replace("import numpy as np", "import numpy as np\n        import six")) == []


def test_calls_with_star_args_are_reported_but_kept():
    src = "import numpy as np\nimport pandas as pd\nr = pd.rolling_mean(*args)\nq = -np.NINF ** 2\n"
    assert uses(src) == [(3, "pd.rolling_mean"), (4, "np.NINF")]
    assert modernize(src) == "import numpy as np\nimport pandas as pd\nr = pd.rolling_mean(*args)\nq = -(-np.inf) ** 2\n"


def test_ambiguous_names_need_a_frame_or_a_pandas_keyword():
    assert uses("""
        import pandas as pd
        df = pd.read_csv('x.csv')
        top = df.head()
        top.sort(columns='a')
        unknown.sort(ascending=False)
        unknown.append(other, ignore_index=True)
        unknown.sort()
        df = []
        df.sort()
        s = pd.Series([3, 1])
        t = s.copy()
        t.sort()
    """) == [(5, "DataFrame.sort"), (6, "Series.sort"), (7, "DataFrame.append"), (13, "Series.sort")]
    # a bare statement on an unknown receiver is taken as Series.sort (in place; DataFrame.sort
    # returned a copy, which a bare statement would throw away)


def test_each_api_once_per_line():
    assert uses("x = df.ix[0] + df.ix[1] + np.float(df.ix[2])\n") == [(1, "DataFrame.ix")]
    assert uses("import numpy as np\nx = df.ix[0] + np.float(df.ix[2])\n") == [(2, "DataFrame.ix"), (2, "np.float")]


def test_aliases_are_the_modules_own():
    assert uses("import pandas\nimport numpy\nr = pandas.rolling_sum(x, 2)\nf = numpy.int\n") == [
        (3, "pd.rolling_sum"), (4, "np.int")]
    assert uses("pd.rolling_sum(x, 2)\nnp.int\n") == []  # pd and np are not imported: someone else's names


def test_unparsable_source_gives_nothing():
    assert scan("def azureml_main(:\n") == []
    assert modernize("def azureml_main(:\n") == "def azureml_main(:\n"


# -- modernize: text ---------------------------------------------------------------------------------------

def test_modernize_rewrites_and_keeps_everything_else():
    src = textwrap.dedent("""\
        # header comment
        import pandas as pd   # the pandas
        import numpy as np


        def azureml_main(dataframe1=None, dataframe2=None):
            df = dataframe1.copy()  # copy it
            x = df.ix[:, 'a']      # labels only: no comment added
            y = df.ix[0, 'a']  # first row
            if df.ix[1, 'a'] > 0:
                pass
            m = df.as_matrix(['a', 'b'])
            df = df.sort(columns='a',
                         ascending=False)  # two lines
            df.set_value(0, 'a', np.NaN)
            df['a'][1] = np.float(2)
            return df.drop('b', 1)
    """)
    out = modernize(src)
    assert out == textwrap.dedent(f"""\
        # header comment
        import pandas as pd   # the pandas
        import numpy as np


        def azureml_main(dataframe1=None, dataframe2=None):
            df = dataframe1.copy()  # copy it
            x = df.loc[:, 'a']      # labels only: no comment added
            y = df.loc[0, 'a']  # first row  {MIGRATE_IX}
            if df.loc[1, 'a'] > 0:  {MIGRATE_IX}
                pass
            m = df[['a', 'b']].values
            df = df.sort_values(by='a',
                         ascending=False)  # two lines
            df.at[0, 'a'] = np.nan
            df.loc[1, 'a'] = float(2)
            return df.drop('b', axis=1)
    """)


def test_modernize_leaves_modern_code_byte_for_byte():
    src = "import pandas as pd\n\n\ndef azureml_main(a, b=None):\n    return a.loc[:, ['x']]  # fine\n"
    assert modernize(src) == src


def test_modernize_adds_the_imports_it_needs_with_the_modules_names():
    out = modernize("import pandas as pds\nimport numpy\nt = pds.datetime(2016, 1, 1)\nz = pds.np.zeros(2)\n"
                    "c = df.append(df2, ignore_index=True)\n")
    assert out == ("import pandas as pds\nimport numpy\nimport datetime\nt = datetime.datetime(2016, 1, 1)\n"
                   "z = numpy.zeros(2)\nc = pds.concat([df, df2], ignore_index=True)\n")
    out = modernize("from datetime import datetime\nimport pandas as pd\nt = pd.datetime(2016, 1, 1)\n")
    assert out == "from datetime import datetime\nimport pandas as pd\nt = datetime(2016, 1, 1)\n"


def test_modernize_window_functions_and_imports():
    out = modernize(textwrap.dedent("""\
        import pandas as pd
        from pandas.tools.plotting import scatter_matrix, radviz
        import pandas.tools.plotting as pdplot
        a = pd.rolling_mean(s + 1, 3, min_periods=1)
        b = pd.rolling_std(s, 5, center=True, ddof=0)
        c = pd.expanding_max(s)
        d = pd.ewmstd(s, span=4, bias=True)
        e = pd.rolling_apply(s, 2, f)
        g = pd.rolling_corr(s, t, 3)
        h = pd.rolling_mean(s, 3, freq='D')
    """))
    assert out == textwrap.dedent("""\
        import pandas as pd
        from pandas.plotting import scatter_matrix, radviz
        import pandas.plotting as pdplot
        a = (s + 1).rolling(3, min_periods=1).mean()
        b = s.rolling(5, center=True).std(ddof=0)
        c = s.expanding().max()
        d = s.ewm(span=4).std(bias=True)
        e = s.rolling(2).apply(f, raw=True)
        g = s.rolling(3).corr(t)
        h = pd.rolling_mean(s, 3, freq='D')
    """)


NEW_SHIMS = textwrap.dedent("""\
    import pandas as pd
    import matplotlib.pyplot as plt
    from pandas.io.json import json_normalize
    from pandas.io.common import CParserError, EmptyDataError
    import pandas.tools.rplot as rplot
    from pandas.tools import rplot

    def azureml_main(frame, dataframe2=None):
        rng = pd.date_range(start='1/1/1995', periods=228, freq='M')
        years = pd.period_range('2016', periods=2, freq='A')
        months = pd.period_range('2016-01', periods=2, freq='M')
        r = frame.resample('M').mean()
        t = frame.resample("15T").sum()
        u = frame.tshift(1)
        g = frame.groupby(pd.TimeGrouper('2H')).sum()
        fig, ax = plt.subplots()
        plt.plot(frame.a, frame.b, axes=ax, color='red')
        other.plot([1], axes=ax)
        frame.plot(axes=ax)
        n = pd.io.json.json_normalize([{}])
        a = frame.ix[:, 0]
        b = frame.ix[2:5, 0:3]
        c = get_frame().ix[:, 0]
        return frame
""")


def test_scan_reports_the_newer_shims_with_their_replacements():
    assert [(u.line, u.old, u.new) for u in scan(NEW_SHIMS)] == [
        (3, "pandas.io.json.json_normalize", "from pandas import json_normalize"),
        (4, "pandas.io.common.CParserError", "from pandas.errors import ParserError"),
        (4, "pandas.io.common.EmptyDataError", "from pandas.errors import EmptyDataError"),
        (5, "pandas.tools.rplot", "seaborn.FacetGrid (or plt.subplots + ax.scatter/ax.plot per group)"),
        (6, "pandas.tools.rplot", "seaborn.FacetGrid (or plt.subplots + ax.scatter/ax.plot per group)"),
        (9, "freq='M'", "freq='ME'"),
        (10, "freq='A'", "freq='Y'"),  # a period: 'A' is 'Y' now, and 'M' (line 11) is still 'M'
        (12, "freq='M'", "freq='ME' (freq='M' on a PeriodIndex)"),
        (13, "freq='15T'", "freq='15min'"),
        (14, "DataFrame.tshift", ".shift(periods, freq='infer')"),
        (15, "freq='2H'", "freq='2h'"), (15, "pd.TimeGrouper", "pd.Grouper(freq=...)"),
        (17, "plt.plot(axes=)", "ax.plot(...)"), (18, "Axes.plot(axes=)", "ax.plot(...)"),
        (20, "pandas.io.json.json_normalize", "pd.json_normalize"),
        (21, "DataFrame.ix", ".loc[rows, df.columns[positions]]"),
        (22, "DataFrame.ix", ".loc[rows, df.columns[positions]]"),
        (23, "DataFrame.ix", ".loc/.iloc"),
    ]


def test_modernize_the_newer_shims():
    assert modernize(NEW_SHIMS) == textwrap.dedent(f"""\
        import pandas as pd
        import matplotlib.pyplot as plt
        from pandas import json_normalize
        from pandas.errors import ParserError as CParserError, EmptyDataError
        import pandas.tools.rplot as rplot
        from pandas.tools import rplot

        def azureml_main(frame, dataframe2=None):
            rng = pd.date_range(start='1/1/1995', periods=228, freq='ME')
            years = pd.period_range('2016', periods=2, freq='Y')
            months = pd.period_range('2016-01', periods=2, freq='M')
            r = frame.resample('M').mean()
            t = frame.resample("15min").sum()
            u = frame.shift(1, freq='infer')
            g = frame.groupby(pd.Grouper(freq='2h')).sum()
            fig, ax = plt.subplots()
            ax.plot(frame.a, frame.b, color='red')
            ax.plot([1])
            frame.plot(axes=ax)
            n = pd.json_normalize([{{}}])
            a = frame.loc[:, frame.columns[0]]
            b = frame.loc[2:5, frame.columns[0:3]]  {MIGRATE_IX}
            c = get_frame().ix[:, 0]
            return frame
    """)  # resample('M') may be on periods ('M' there) and get_frame() would run twice: left as they are


def test_ix_column_positions_need_literal_ints():
    assert modernize("x = df.ix[:, n]\ny = df.ix[:, [0, 'b']]\nz = self.df.ix[:, -1]\n") == (
        f"x = df.loc[:, n]\ny = df.loc[:, [0, 'b']]  {MIGRATE_IX}\nz = self.df.loc[:, self.df.columns[-1]]\n")


# -- modernize: behaviour ----------------------------------------------------------------------------------

INPUTS = ("pd.DataFrame({'a': [3, 1, 2, 5], 'b': [0.5, 1.5, 2.5, 3.5], 'w': ['1', '3', 'x', '2']}), "
          "pd.DataFrame({'a': [7], 'b': [7.5], 'w': ['9']})")

SCRIPTS = {
    "indexing_and_sorting": """\
        import pandas as pd
        import numpy as np
        from pandas.tools.plotting import scatter_matrix  # imported, not used

        def azureml_main(dataframe1=None, dataframe2=None):
            # the frame gets a default integer index: .ix is label-based, as .loc
            df = dataframe1.copy()
            df['c'] = df.ix[:, 'a'] * 2
            df['top'] = df.ix[1:2, 'b'].sum()
            m = df.as_matrix(['a', 'b'])
            df['m'] = m.sum(axis=1)
            df = df.sort(columns='a', ascending=False)
            df = df.sort_index(by='b')
            df = df.append(dataframe2, ignore_index=True)
            df = df.append({'a': 9, 'b': 9.5, 'w': 'z'}, ignore_index=True)
            df.set_value(0, 'a', 100)
            df = df.set_value(1, 'b', -1.5)
            df['v'] = df.get_value(2, 'a')
            n = 0
            for name, col in df.iteritems():
                n += len(col)
            df['n'] = n
            return df.drop('c', 1)
    """,
    "positions_and_frequencies": """\
        import pandas as pd
        from pandas.io.json import json_normalize

        def azureml_main(dataframe1=None, dataframe2=None):
            frame = dataframe1.copy()
            first = frame.ix[:, 0]          # the columns are strings: 0.18 took 0 as a position
            block = frame.ix[1:2, 0:2]
            picked = frame.ix[:, [0, 2]]
            out = pd.DataFrame({'first': first, 'block': block.sum(axis=1), 'picked': picked['w']})
            out['last'] = frame.ix[3, -1]
            out.index = pd.date_range(start='1/1/1995', periods=len(out), freq='M')
            out['next'] = out.tshift(1).index.strftime('%Y-%m-%d')
            hourly = pd.Series(range(16), index=pd.date_range('2016-01-01', periods=16, freq='15T'))
            out['hourly'] = hourly.resample('H').sum().values
            out['year'] = pd.period_range('2016', periods=len(out), freq='A').astype(str)
            out['norm'] = json_normalize([{'k': {'v': i}} for i in range(len(out))])['k.v'].values
            out.index = out.index.strftime('%Y-%m-%d')
            return out
    """,
    "numbers_and_windows": """\
        import pandas as pd
        import numpy as np

        def azureml_main(dataframe1, dataframe2=None):
            df = dataframe1.convert_objects(convert_numeric=True)
            s = df['w'].copy()
            s.sort()
            df['sorted'] = s.values
            df['r'] = pd.rolling_mean(df['a'], 2)
            df['x'] = pd.rolling_max(df.b, 3, min_periods=1)
            df['e'] = pd.ewma(df['b'], span=3)
            df['q'] = pd.expanding_quantile(df.b, 0.5)
            df['f'] = df['a'].astype(np.float) * np.product([1, 2])
            df['i'] = np.NaN
            df['year'] = pd.datetime(2016, 1, 1).year
            df['zeros'] = pd.np.zeros(len(df))
            df['filled'] = df['w'].fillna(method='ffill')
            return df
    """,
}


@pytest.fixture(scope="module")
def classic_results():
    """Each original script's output, run in a child process with the classic layer installed."""
    child = textwrap.dedent("""
        import json, sys, warnings
        warnings.simplefilter('ignore')
        import pandas as pd
        from scorepub_sandbox import classic_compat
        classic_compat.install()
        spec = json.load(sys.stdin)
        out = {}
        for name, source in spec['scripts'].items():
            ns = {}
            exec(compile(source, name, 'exec'), ns)
            out[name] = ns['azureml_main'](*eval(spec['inputs'], {'pd': pd})).to_json(orient='split')
        print(json.dumps(out))
    """)
    scripts = {k: textwrap.dedent(v) for k, v in SCRIPTS.items()}
    proc = subprocess.run([sys.executable, "-c", child], input=json.dumps({"scripts": scripts, "inputs": INPUTS}),
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_modernized_script_computes_what_the_original_did(name, classic_results):
    source = textwrap.dedent(SCRIPTS[name])
    modern = modernize(source)
    assert not hasattr(pd.DataFrame, "ix")  # this process runs plain modern pandas
    ns = {}
    exec(compile(modern, name, "exec"), ns)
    frame = ns["azureml_main"](*eval(INPUTS, {"pd": pd}))
    assert frame.to_json(orient="split") == classic_results[name]
    assert scan(modern) == []  # nothing classic is left
    comments = [line.split("#", 1)[1] for line in source.splitlines() if "#" in line]
    assert all(c in modern for c in comments)


def test_modernized_chained_assignment_does_what_pandas_0_18_did():
    """Under copy-on-write (pandas 3) ``df['a'][0] = x`` changes nothing, with or without the
    classic layer; pandas 0.18 changed df. The rewrite to .loc restores that."""
    source = textwrap.dedent("""\
        def azureml_main(dataframe1, dataframe2=None):
            dataframe1['a'][0] = -1
            dataframe1.b[1] = -2.0
            dataframe1[dataframe1.a > 2]['w'] = 'big'
            return dataframe1
    """)
    modern = modernize(source)
    assert "dataframe1.loc[0, 'a'] = -1" in modern and "dataframe1.loc[1, 'b'] = -2.0" in modern
    assert "dataframe1.loc[dataframe1.a > 2, 'w'] = 'big'" in modern
    ns = {}
    exec(modern, ns)
    frame = ns["azureml_main"](*eval(INPUTS, {"pd": pd}))
    assert frame["a"].tolist() == [-1, 1, 2, 5] and frame["b"].tolist()[1] == -2.0
    assert frame["w"].tolist() == ["1", "3", "x", "big"]
