"""scorepub_sandbox/classic_compat.py: the pandas 0.18 / numpy 1.11 APIs, with their documented
semantics, and nothing modern changed.

install() patches pandas, numpy and pickle for the whole process, so no test here installs it in
the pytest process: every case below is a snippet that one child process runs, after install(),
each in its own namespace (pd, np, pickle, io, out). A snippet stores what it observed in `out`;
the child sends all of it back as JSON (NaN as None) and each test asserts on its own case.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES: dict[str, str] = {}
CHILD_ENV = {**os.environ, "MPLBACKEND": "Agg"}


def case(name: str, code: str) -> str:
    CASES[name] = textwrap.dedent(code)
    return name


# Modern calls, run before and after install(): the results must be identical.
MODERN = textwrap.dedent("""
    df = pd.DataFrame({'a': [3, 1, 2], 'b': [1.5, None, 3.5]}, index=['x', 'y', 'z'])
    res = {
        'drop_columns': df.drop(columns=['a']).to_dict(),
        'drop_axis': df.drop('a', axis=1).to_dict(),
        'sort_values': df.sort_values('a', ascending=False).index.tolist(),
        'sort_index': df.sort_index(ascending=False).index.tolist(),
        'fillna': df.fillna(0).to_dict(),
        'concat': pd.concat([df, df], ignore_index=True).shape,
        'loc': df.loc['y', 'a'], 'iloc': df.iloc[0].tolist(),
        'between': pd.Series([1, 2, 3]).between(1, 2, inclusive='left').tolist(),
        'to_datetime': str(pd.to_datetime('2016-01-02')),
        'read_csv': pd.read_csv(io.StringIO('p,q\\n1,2\\n')).to_dict(),
        'np_bool': repr(np.bool), 'loads': pickle.loads(pickle.dumps({'k': 1})),
        'date_range_me': pd.date_range('2016-01-01', periods=2, freq='ME').tolist(),
        'period_m': str(pd.Period('2016-01', freq='M')), 'period_range_y': str(pd.period_range('2016', periods=2, freq='Y')),
        'resample_h': pd.Series(range(4), index=pd.date_range('2016', periods=4, freq='30min')).resample('h').sum().tolist(),
        'shift_h': str(pd.Series([1], index=pd.to_datetime(['2016-01-01'])).shift(1, freq='h').index[0]),
        'grouper': repr(pd.Grouper(freq='ME').freq),
        'bad_freq': _raises(lambda: pd.date_range('2016', periods=2, freq='XYZ')),
        'plot': len(plt.figure().add_subplot().plot([1, 2], [3, 4], color='red')),
        'plot_bad_kw': _raises(lambda: plt.figure().add_subplot().plot([1, 2], bogus=1)),
    }
""")

HARNESS = textwrap.dedent("""
    import io, json, math, pickle, sys, time, warnings
    warnings.simplefilter('ignore')
    import numpy as np, pandas as pd
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # as the template does, before install(): patched at once
    from scorepub_sandbox import classic_compat

    def _raises(fn):
        try:
            fn()
        except Exception as exc:
            return type(exc).__name__

    def clean(o):
        if isinstance(o, float) and math.isnan(o): return None
        if isinstance(o, dict): return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)): return [clean(v) for v in o]
        if hasattr(o, 'tolist'): return clean(o.tolist())
        if isinstance(o, (str, int, float, bool)) or o is None: return o
        return repr(o)

    def modern():
        ns = {'pd': pd, 'np': np, 'pickle': pickle, 'io': io, 'plt': plt, '_raises': _raises}
        exec(MODERN, ns)
        plt.close('all')
        return clean(ns['res'])

    spec = json.load(sys.stdin)
    MODERN = spec['modern']
    import pandas.core.resample, matplotlib.axes
    owners = {'DataFrame': pd.DataFrame, 'Series': pd.Series, 'pd': pd, 'np': np, 'pickle': pickle,
              'TimeGrouper': pandas.core.resample.TimeGrouper, 'Period': pd.Period, 'PeriodIndex': pd.PeriodIndex,
              'DatetimeIndex': pd.DatetimeIndex, 'Axes': matplotlib.axes.Axes}
    before = {o: dict(vars(t)) for o, t in owners.items()}
    before_np_bool, before_loc = np.bool, pd.DataFrame.loc
    modern_before = modern()
    t0 = time.perf_counter()
    classic_compat.install()
    install_ms = (time.perf_counter() - t0) * 1000
    classic_compat.install()  # idempotent
    results = {'_install_ms': install_ms, '_modern_before': modern_before, '_modern_after': modern()}
    for name, code in spec['cases'].items():
        out = {}
        ns = {'pd': pd, 'np': np, 'pickle': pickle, 'io': io, 'out': out, 'before': before, 'plt': plt,
              'owners': owners, 'before_np_bool': before_np_bool, 'before_loc': before_loc,
              'classic_compat': classic_compat}
        try:
            exec(code, ns)
            results[name] = clean(out)
        except Exception as exc:
            results[name] = {'error': f'{type(exc).__name__}: {exc}'}
    print(json.dumps(results))
""")


@pytest.fixture(scope="module")
def children():
    """This module's two child processes (the cases, and LAZY below), started together so that
    they run side by side; each fixture below waits for its own."""
    def start(code):
        return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT, env=CHILD_ENV)

    procs = {"cases": start(HARNESS), "lazy": start(LAZY)}
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def finished(proc, input=None) -> dict:
    out, err = proc.communicate(input=input, timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def classic(children):
    """{case name: what the snippet put in `out`}, from one child process with the layer installed."""
    return finished(children["cases"], json.dumps({"cases": CASES, "modern": MODERN}))


def result(classic, name):
    r = classic[name]
    assert "error" not in r, r["error"]
    return r


# -- nothing modern changes --------------------------------------------------------------------------

case("identity", """
    wrapped = {('DataFrame', n) for n in ('drop', 'sort_values', 'sort_index', 'dropna', 'set_index',
               'reset_index', 'fillna', 'resample')}
    wrapped |= {('Series', n) for n in ('drop', 'sort_values', 'sort_index', 'dropna', 'reset_index',
                'fillna', 'resample', 'between')}
    wrapped |= {('pd', 'concat'), ('pd', 'read_csv'), ('pd', 'read_table'), ('pd', 'to_datetime'),
                ('pickle', 'load'), ('pickle', 'loads')}
    wrapped |= {('pd', n) for n in ('date_range', 'bdate_range', 'timedelta_range', 'period_range')}
    wrapped |= {(o, n) for o in ('DataFrame', 'Series') for n in ('asfreq', 'shift')}
    wrapped |= {('TimeGrouper', '__init__'), ('DatetimeIndex', 'to_period'), ('PeriodIndex', '__new__'),
                ('Period', '__new__'), ('Axes', 'plot')}
    changed, bad_wraps = [], []
    for owner, attrs in before.items():
        now = vars(owners[owner])
        for name, value in attrs.items():
            if now.get(name) is not value and (owner, name) not in wrapped:
                changed.append(f'{owner}.{name}')
    for owner, name in wrapped:
        target = owners[owner]
        original = before[owner].get(name) or getattr(target, name).__wrapped__
        if isinstance(original, staticmethod):
            original = original.__func__
        if getattr(target, name).__wrapped__ is not original:
            bad_wraps.append(f'{owner}.{name}')
    out['changed'] = changed
    out['bad_wraps'] = bad_wraps
    out['loc_same'] = pd.DataFrame.loc is before_loc
    out['np_bool_same'] = np.bool is before_np_bool
""")


def test_existing_attributes_keep_their_identity(classic):
    r = result(classic, "identity")
    assert r["changed"] == []
    assert r["bad_wraps"] == []  # wrapped once (install is idempotent), around the original
    assert r["loc_same"] and r["np_bool_same"]


def test_modern_calls_give_identical_results(classic):
    assert classic["_modern_after"] == classic["_modern_before"]
    assert classic["_modern_before"]["drop_columns"] == classic["_modern_before"]["drop_axis"]


def test_install_is_cheap(classic):
    assert classic["_install_ms"] < 50


def test_this_process_is_untouched():
    import numpy as np
    import pandas as pd

    assert not hasattr(pd.DataFrame, "ix") and not hasattr(pd, "rolling_mean") and "float" not in vars(np)


def test_catalogue_lists_old_and_new():
    from scorepub_sandbox.classic_compat import CATALOGUE

    assert len(CATALOGUE) > 100
    assert all(entry.old and entry.new for entry in CATALOGUE)
    assert len({e.old for e in CATALOGUE}) == len(CATALOGUE)
    assert ("DataFrame.ix", ".loc[...] (labels) / .iloc[...] (positions)") in CATALOGUE


case("catalogue_resolves", """
    missing = []
    for entry in classic_compat.CATALOGUE:
        owner, _, name = entry.old.partition('(')[0].partition('.')
        if owner in owners and not hasattr(owners[owner], name):
            missing.append(entry.old)
    out['missing'] = missing
""")


def test_everything_in_the_catalogue_exists_after_install(classic):
    assert result(classic, "catalogue_resolves")["missing"] == []


# -- .ix ---------------------------------------------------------------------------------------------

case("ix_string_index", """
    df = pd.DataFrame({'a': [1, 2, 3, 4], 'b': [5., 6., 7., 8.]}, index=list('wxyz'))
    out['row0'] = df.ix[0].tolist()                 # integer on a non-integer axis: a position
    out['label'] = df.ix['y'].tolist()
    out['slice'] = df.ix[1:3].index.tolist()        # positional slice: stop excluded
    out['label_slice'] = df.ix['x':'z'].index.tolist()  # label slice: stop included
    out['mixed'] = df.ix['x':'y', 0].tolist()       # rows by label, column by position
    out['scalar'] = df.ix[2, 'b']
    out['int_list'] = df.ix[[0, 2]].index.tolist()
    out['col_pos'] = df.ix[:, 1].tolist()
    out['mask'] = df.ix[df.a > 2, 'a'].tolist()
    out['missing_label'] = df.ix[['w', 'q'], 'a'].tolist()  # 0.18 reindexed: NaN for 'q'
""")


def test_ix_falls_back_to_positions_on_a_string_index(classic):
    r = result(classic, "ix_string_index")
    assert r["row0"] == [1.0, 5.0] and r["label"] == [3.0, 7.0]
    assert r["slice"] == ["x", "y"] and r["label_slice"] == ["x", "y", "z"]
    assert r["mixed"] == [2, 3] and r["scalar"] == 7.0
    assert r["int_list"] == ["w", "y"] and r["col_pos"] == [5.0, 6.0, 7.0, 8.0]
    assert r["mask"] == [3, 4] and r["missing_label"] == [1, None]


case("ix_integer_index", """
    df = pd.DataFrame({'a': [10, 11, 12, 13]}, index=[3, 1, 2, 0])
    out['row'] = df.ix[0, 'a']                      # integer axis: labels only
    out['slice'] = df.ix[1:2, 'a'].tolist()         # label slice, stop included
    out['list'] = df.ix[[0, 3], 'a'].tolist()
    try:
        pd.DataFrame({'a': [1]}, index=[10]).ix[0]
        out['no_fallback'] = False
    except KeyError:
        out['no_fallback'] = True
    f = pd.Series([1., 2., 3.], index=[0.5, 1.0, 2.0])
    out['float_index'] = f.ix[1]                    # floating axis: labels too
""")


def test_ix_is_label_based_on_an_integer_index(classic):
    r = result(classic, "ix_integer_index")
    assert r["row"] == 13 and r["slice"] == [11, 12] and r["list"] == [13, 10]
    assert r["no_fallback"] is True and r["float_index"] == 2.0


case("ix_set", """
    df = pd.DataFrame({'a': [1, 2, 3], 'b': [4., 5., 6.]}, index=['x', 'y', 'z'])
    df.ix[0, 'a'] = 100                 # position + label
    df.ix['y', 'b'] = -5.0              # labels
    df.ix[df.a > 2, 'c'] = 'big'        # a mask, creating a column
    df.ix[1, 'd'] = 1.5                 # a position and a new column
    df.ix['w'] = [0, 0.0, 'w', 0.0]     # a new row
    out['a'] = df['a'].tolist()
    out['b'] = df['b'].tolist()
    out['c'] = df['c'].tolist()
    out['d'] = df['d'].tolist()
    out['index'] = df.index.tolist()
    s = pd.Series([1, 2, 3], index=list('abc'))
    s.ix[0] = 10
    s.ix['d'] = 4
    out['s'] = s.tolist()
    out['s_get'] = [s.ix[1], s.ix['c'], s.ix[1:3].tolist()]
""")


def test_ix_set_like_old_ix(classic):
    r = result(classic, "ix_set")
    assert r["a"] == [100, 2, 3, 0] and r["b"] == [4.0, -5.0, 6.0, 0.0]
    assert r["c"] == ["big", None, "big", "w"] and r["d"] == [None, 1.5, None, 0.0]
    assert r["index"] == ["x", "y", "z", "w"]
    assert r["s"] == [10, 2, 3, 4] and r["s_get"] == [2, 3, [2, 3]]


# -- DataFrame / Series methods -----------------------------------------------------------------------

case("as_matrix", """
    df = pd.DataFrame({'a': [1, 2], 'b': [3.5, 4.5]})
    out['all'] = df.as_matrix().tolist()
    out['cols'] = df.as_matrix(['b']).tolist()
    out['series'] = df['a'].as_matrix().tolist()
    out['is_ndarray'] = type(df.as_matrix()).__name__
""")


def test_as_matrix(classic):
    r = result(classic, "as_matrix")
    assert r["all"] == [[1.0, 3.5], [2.0, 4.5]] and r["cols"] == [[3.5], [4.5]]
    assert r["series"] == [1, 2] and r["is_ndarray"] == "ndarray"


case("get_set_value", """
    df = pd.DataFrame({'a': [1, 2]}, index=['x', 'y'])
    out['get'] = df.get_value('y', 'a')
    out['get_takeable'] = df.get_value(0, 0, takeable=True)
    ret = df.set_value('x', 'a', 10)
    out['returns_self'] = ret is df
    df.set_value('z', 'b', 5.0)                     # enlarges
    out['df'] = df.to_dict()
    s = pd.Series([1, 2], index=['p', 'q'])
    out['s_get'] = s.get_value('q')
    out['s_returns_self'] = s.set_value('r', 3) is s
    out['s'] = s.to_dict()
""")


def test_get_value_and_set_value(classic):
    r = result(classic, "get_set_value")
    assert r["get"] == 2 and r["get_takeable"] == 1 and r["returns_self"] is True
    assert r["df"] == {"a": {"x": 10.0, "y": 2.0, "z": None}, "b": {"x": None, "y": None, "z": 5.0}}
    assert r["s_get"] == 2 and r["s_returns_self"] is True and r["s"] == {"p": 1, "q": 2, "r": 3}


case("sort", """
    df = pd.DataFrame({'a': [3, 1, 2], 'b': [1, 3, 2]}, index=[2, 0, 1])
    out['by_column'] = df.sort(columns='a').a.tolist()
    out['positional'] = df.sort('b', ascending=False).b.tolist()
    out['no_columns'] = df.sort().index.tolist()          # columns=None: sort_index
    out['copy'] = df.a.tolist()                           # not in place by default
    out['sort_index_by'] = df.sort_index(by='b').b.tolist()
    s = pd.Series([3, 1, 2])
    out['series_returns'] = s.sort()
    out['series'] = s.tolist()                            # Series.sort is in place
    t = pd.Series([3, None, 1])
    out['order'] = t.order().tolist()
    out['order_na_first'] = t.order(na_last=False).tolist()
    out['unchanged'] = t.tolist()
""")


def test_sort_order_and_sort_index_by(classic):
    r = result(classic, "sort")
    assert r["by_column"] == [1, 2, 3] and r["positional"] == [3, 2, 1]
    assert r["no_columns"] == [0, 1, 2] and r["copy"] == [3, 1, 2]
    assert r["sort_index_by"] == [1, 2, 3]
    assert r["series_returns"] is None and r["series"] == [1, 2, 3]
    assert r["order"] == [1.0, 3.0, None] and r["order_na_first"] == [None, 1.0, 3.0]
    assert r["unchanged"] == [3.0, None, 1.0]


case("append", """
    df = pd.DataFrame({'a': [1, 2]})
    out['frame'] = df.append(pd.DataFrame({'a': [3]})).index.tolist()
    out['ignore_index'] = df.append(pd.DataFrame({'a': [3]}), ignore_index=True).index.tolist()
    out['dict'] = df.append({'a': 5, 'b': 'new'}, ignore_index=True).to_dict('list')
    try:
        df.append({'a': 5})
    except TypeError as exc:
        out['dict_needs_ignore_index'] = str(exc)
    out['named_series'] = df.append(pd.Series({'a': 9}, name='r')).index.tolist()
    out['list'] = df.append([df, df]).a.tolist()
    out['empty'] = pd.DataFrame().append({'x': 1}, ignore_index=True).to_dict('list')
    try:
        df.append(df, verify_integrity=True)
    except ValueError:
        out['verify'] = True
    out['series_append'] = pd.Series([1]).append(pd.Series([2])).tolist()
    out['series_list'] = pd.Series([1]).append([pd.Series([2]), pd.Series([3])], ignore_index=True).index.tolist()
""")


def test_append_frames_rows_and_lists(classic):
    r = result(classic, "append")
    assert r["frame"] == [0, 1, 0] and r["ignore_index"] == [0, 1, 2]
    assert r["dict"] == {"a": [1, 2, 5], "b": [None, None, "new"]}
    assert r["dict_needs_ignore_index"] == "Can only append a Series if ignore_index=True or if the Series has a name"
    assert r["named_series"] == [0, 1, "r"] and r["list"] == [1, 2, 1, 2, 1, 2]
    assert r["empty"] == {"x": [1]} and r["verify"] is True
    assert r["series_append"] == [1, 2] and r["series_list"] == [0, 1, 2]


case("convert_objects", """
    df = pd.DataFrame({'n': ['1', 'x', '2.5'], 'w': ['a', 'b', 'c'], 'k': [1, 2, 3],
                       'o': pd.Series([1, 2, 3], dtype=object)})
    c = df.convert_objects(convert_numeric=True)
    out['n'] = c['n'].tolist()
    out['dtypes'] = [str(c[k].dtype) for k in ('n', 'k', 'o')]
    out['words_left_alone'] = c['w'].tolist()            # would be all NaN: left as it was
    out['soft'] = str(df.convert_objects()['o'].dtype)   # soft conversion of numbers in objects
    out['soft_keeps_strings'] = df.convert_objects()['n'].tolist()
    out['series'] = pd.Series(['3', 'y']).convert_objects(convert_numeric=True).tolist()
    out['dates'] = str(pd.DataFrame({'d': ['2016-01-01', 'bad']}).convert_objects(convert_dates='coerce')['d'].dtype)
""")


def test_convert_objects(classic):
    r = result(classic, "convert_objects")
    assert r["n"] == [1.0, None, 2.5] and r["dtypes"] == ["float64", "int64", "int64"]
    assert r["words_left_alone"] == ["a", "b", "c"] and r["soft"] == "int64"
    assert r["soft_keeps_strings"] == ["1", "x", "2.5"] and r["series"] == [3.0, None]
    assert r["dates"].startswith("datetime64")


case("small_methods", """
    df = pd.DataFrame({'a': [1, 2, 3], 'b': [4., 5., 6.]}, index=['x', 'y', 'z'])
    out['iteritems'] = [k for k, _ in df.iteritems()]
    out['s_iteritems'] = list(df.a.iteritems())
    out['lookup'] = df.lookup(['x', 'z'], ['b', 'a']).tolist()
    out['irow'] = df.irow(1).tolist()
    out['icol'] = df.icol(0).tolist()
    out['iget_value'] = df.iget_value(2, 1)
    out['iget'] = df.a.iget(2)
    out['valid'] = pd.Series([1, None, 3]).valid().tolist()
    out['nonzero'] = pd.Series([0, 3, 0, 4]).nonzero()[0].tolist()
    out['reshape'] = pd.Series([1, 2, 3, 4]).reshape(2, 2).tolist()
    s = pd.Series([1, 2])
    out['reshape_same'] = s.reshape(2) is s
    out['applymap'] = df.applymap(lambda v: v * 10).a.tolist()
    out['mad'] = df.mad().tolist()
    out['mad_series'] = pd.Series([1., 2., 3., 10.]).mad()
    out['reindex_axis'] = df.reindex_axis(['b', 'q'], axis=1).columns.tolist()
    out['bool'] = pd.Series([True]).bool()
    out['from_items'] = pd.DataFrame.from_items([('q', [1, 2]), ('p', [3, 4])]).columns.tolist()
    out['from_items_index'] = pd.DataFrame.from_items([('r1', [1, 2])], columns=['u', 'v'], orient='index').to_dict()
    out['from_csv'] = pd.DataFrame.from_csv(io.StringIO('d,v\\n2016-01-01,1\\n')).index.dtype.kind
""")


def test_small_methods(classic):
    r = result(classic, "small_methods")
    assert r["iteritems"] == ["a", "b"] and r["s_iteritems"] == [["x", 1], ["y", 2], ["z", 3]]
    assert r["lookup"] == [4.0, 3.0] and r["irow"] == [2.0, 5.0] and r["icol"] == [1, 2, 3]
    assert r["iget_value"] == 6.0 and r["iget"] == 3
    assert r["valid"] == [1.0, 3.0] and r["nonzero"] == [1, 3]
    assert r["reshape"] == [[1, 2], [3, 4]] and r["reshape_same"] is True
    assert r["applymap"] == [10, 20, 30]
    assert r["mad"] == [2 / 3, 2 / 3] and r["mad_series"] == 3.0
    assert r["reindex_axis"] == ["b", "q"] and r["bool"] is True
    assert r["from_items"] == ["q", "p"] and r["from_items_index"] == {"u": {"r1": 1}, "v": {"r1": 2}}
    assert r["from_csv"] == "M"


# -- wrapped methods: the old argument forms ------------------------------------------------------------

case("old_argument_forms", """
    df = pd.DataFrame({'a': [1, None, 3], 'b': [4., 5., None]})
    out['drop_positional_axis'] = df.drop('a', 1).columns.tolist()
    out['drop_rows'] = df.drop([0], 0).index.tolist()
    out['series_drop'] = pd.Series([1, 2]).drop(0, 0).tolist()
    out['ffill'] = df.fillna(method='ffill').to_dict('list')
    out['bfill_limit'] = pd.Series([None, None, 1.]).fillna(method='bfill', limit=1).tolist()
    out['downcast'] = str(pd.Series([1., None]).fillna(0, downcast='infer').dtype)
    out['sort_values_positional'] = df.sort_values('b', 0, False).b.tolist()
    out['dropna_positional'] = df.dropna(1).columns.tolist()
    out['concat_axis'] = pd.concat([df, df], 1).shape
    out['join_axes'] = pd.concat([df, df.rename(columns={'a': 'c'})], join_axes=[df.columns]).columns.tolist()
    ts = pd.Series(range(6), index=pd.date_range('2016-01-01', periods=6, freq='12h'))
    out['resample_how'] = ts.resample('D', how='sum').tolist()
    out['resample_fill'] = pd.Series([1., 2.], index=pd.to_datetime(['2016-01-01', '2016-01-03'])) \\
        .resample('D', fill_method='ffill').tolist()
    out['read_csv_sep'] = pd.read_csv(io.StringIO('p;q\\n1;2\\n'), ';').columns.tolist()
    out['squeeze'] = type(pd.read_csv(io.StringIO('p\\n1\\n2\\n'), squeeze=True)).__name__
    out['bad_lines'] = pd.read_csv(io.StringIO('p,q\\n1,2\\n1,2,3\\n4,5\\n'), error_bad_lines=False,
                                   warn_bad_lines=False).p.tolist()
    out['whitespace'] = pd.read_csv(io.StringIO('p  q\\n1   2\\n'), delim_whitespace=True).columns.tolist()
    out['to_datetime'] = pd.isna(pd.to_datetime(pd.Series(['2016-01-01', 'bad']), coerce=True)).tolist()
    out['to_datetime_box'] = type(pd.to_datetime(['2016-01-01'], box=False)).__name__
    out['between'] = pd.Series([1, 2, 3]).between(1, 3, inclusive=False).tolist()
""")


def test_old_argument_forms(classic):
    r = result(classic, "old_argument_forms")
    assert r["drop_positional_axis"] == ["b"] and r["drop_rows"] == [1, 2] and r["series_drop"] == [2]
    assert r["ffill"] == {"a": [1.0, 1.0, 3.0], "b": [4.0, 5.0, 5.0]}
    assert r["bfill_limit"] == [None, 1.0, 1.0] and r["downcast"] == "int64"
    assert r["sort_values_positional"] == [5.0, 4.0, None] and r["dropna_positional"] == []
    assert r["concat_axis"] == [3, 4] and r["join_axes"] == ["a", "b"]
    assert r["resample_how"] == [1, 5, 9] and r["resample_fill"] == [1.0, 1.0, 2.0]
    assert r["read_csv_sep"] == ["p", "q"] and r["squeeze"] == "Series"
    assert r["bad_lines"] == [1, 4] and r["whitespace"] == ["p", "q"]
    assert r["to_datetime"] == [False, True] and r["to_datetime_box"] == "ndarray"
    assert r["between"] == [False, True, False]


# -- moments ---------------------------------------------------------------------------------------------

case("moments", """
    s = pd.Series([1., 4., 2., None, 8., 5., 7.])
    df = pd.DataFrame({'x': s, 'y': s[::-1].values})
    same = {}
    for stat in ('mean', 'sum', 'std', 'var', 'min', 'max', 'median', 'skew', 'kurt'):
        same[f'rolling_{stat}'] = getattr(pd, f'rolling_{stat}')(s, 3).equals(getattr(s.rolling(3), stat)())
        same[f'rolling_{stat}_frame'] = getattr(pd, f'rolling_{stat}')(df, 3, min_periods=2, center=True).equals(
            getattr(df.rolling(3, min_periods=2, center=True), stat)())
        same[f'expanding_{stat}'] = getattr(pd, f'expanding_{stat}')(s).equals(getattr(s.expanding(1), stat)())
    same['rolling_quantile'] = pd.rolling_quantile(s, 3, 0.5).equals(s.rolling(3).quantile(0.5))
    same['expanding_quantile'] = pd.expanding_quantile(s, 0.25).equals(s.expanding(1).quantile(0.25))
    same['rolling_corr'] = pd.rolling_corr(df.x, df.y, 3).equals(df.x.rolling(3).corr(df.y))
    same['rolling_cov'] = pd.rolling_cov(df.x, df.y, 3).equals(df.x.rolling(3).cov(df.y))
    same['expanding_corr'] = pd.expanding_corr(df.x, df.y).equals(df.x.expanding(1).corr(df.y))
    same['ewma'] = pd.ewma(s, span=3).equals(s.ewm(span=3).mean())
    same['ewma_com'] = pd.ewma(s, 2.0, min_periods=2).equals(s.ewm(com=2.0, min_periods=2).mean())
    same['ewmstd'] = pd.ewmstd(s, span=3, bias=True).equals(s.ewm(span=3).std(bias=True))
    same['ewmvar'] = pd.ewmvar(s, halflife=2).equals(s.ewm(halflife=2).var())
    same['ewmcorr'] = pd.ewmcorr(df.x, df.y, span=3).equals(df.x.ewm(span=3).corr(df.y))
    out['same'] = same
    out['rolling_apply_gets'] = pd.rolling_apply(s, 2, lambda a: float(type(a) is np.ndarray)).dropna().unique()
    out['count'] = pd.rolling_count(pd.Series([1., None, 3., np.inf, 5.]), 3).tolist()
    out['expanding_count'] = pd.expanding_count(pd.Series([1., None, 3.])).tolist()
    out['ndarray_in_ndarray_out'] = type(pd.rolling_mean(np.arange(5.), 2)).__name__
    out['pairwise'] = pd.rolling_corr(df, 3).shape
""")


def test_moment_functions_equal_the_window_methods(classic):
    r = result(classic, "moments")
    assert r["same"] == {k: True for k in r["same"]} and len(r["same"]) == 37
    assert r["rolling_apply_gets"] == [1.0]  # func is called with an ndarray, as in 0.18
    assert r["count"] == [1.0, 1.0, 2.0, 1.0, 2.0]  # from the first row; NaN and inf not counted
    assert r["expanding_count"] == [1.0, 1.0, 2.0]
    assert r["ndarray_in_ndarray_out"] == "ndarray" and r["pairwise"] == [14, 2]


# -- pandas top level and module paths ---------------------------------------------------------------------

case("pandas_names", """
    import datetime
    out['datetime'] = pd.datetime is datetime.datetime
    out['np'] = pd.np is np
    idx = pd.Int64Index([1, 2])
    out['int64index'] = [str(idx.dtype), isinstance(idx, pd.Int64Index), isinstance(pd.RangeIndex(2), pd.Int64Index),
                         isinstance(pd.Index([1.5]), pd.Int64Index)]
    out['float64index'] = [str(pd.Float64Index([1, 2]).dtype), isinstance(pd.Index([1.5]), pd.Float64Index)]
    ts = pd.DataFrame({'v': [1, 2, 3]}, index=pd.to_datetime(['2016-01-01', '2016-01-02', '2016-02-01']))
    out['timegrouper'] = ts.groupby(pd.TimeGrouper('MS')).v.sum().tolist()
    out['scatter_matrix'] = pd.scatter_matrix is pd.plotting.scatter_matrix
    vc = pd.value_counts(['a', 'b', 'a'])
    out['value_counts'] = [vc.to_dict(), vc.name, vc.index.name]
    out['ordered_merge'] = pd.ordered_merge is pd.merge_ordered
""")


def test_pandas_top_level_names(classic):
    r = result(classic, "pandas_names")
    assert r["datetime"] and r["np"] and r["scatter_matrix"] and r["ordered_merge"]
    assert r["int64index"] == ["int64", True, True, False]
    assert r["float64index"] == ["float64", True]
    assert r["timegrouper"] == [3, 3] and r["value_counts"] == [{"a": 2, "b": 1}, None, None]


case("modules", """
    from pandas.tools.plotting import scatter_matrix, parallel_coordinates, andrews_curves, radviz, \\
        lag_plot, autocorrelation_plot, bootstrap_plot
    import pandas.tools.plotting as plotting
    from pandas.tools.merge import merge, concat
    from pandas.tseries.tools import to_datetime
    from pandas.stats.moments import rolling_mean, ewma
    from pandas.util.testing import assert_frame_equal
    from pandas.core.datetools import BDay
    out['plotting'] = [scatter_matrix is pd.plotting.scatter_matrix, radviz is pd.plotting.radviz,
                       plotting.lag_plot is pd.plotting.lag_plot]
    out['merge'] = [merge is pd.merge, concat is pd.concat, to_datetime is pd.to_datetime]
    out['moments'] = [rolling_mean is pd.rolling_mean, ewma is pd.ewma]
    out['testing'] = assert_frame_equal is pd.testing.assert_frame_equal
    out['datetools'] = BDay is pd.offsets.BDay
    out['pd_tools'] = pd.tools.plotting.bootstrap_plot is pd.plotting.bootstrap_plot
    try:
        import pandas.tools.nonexistent
    except ImportError:
        out['unknown_still_fails'] = True
""")


def test_old_module_paths(classic):
    r = result(classic, "modules")
    assert r["plotting"] == [True] * 3 and r["merge"] == [True] * 3 and r["moments"] == [True] * 2
    assert r["testing"] and r["datetools"] and r["pd_tools"] and r["unknown_still_fails"]


# -- numpy -----------------------------------------------------------------------------------------------

case("numpy", """
    import math
    out['builtins'] = [np.float is float, np.int is int, np.object is object, np.str is str,
                       np.unicode is str, np.complex is complex]
    out['constants'] = [math.isnan(np.NaN), math.isnan(np.NAN), np.Inf == np.Infinity == np.infty == np.PINF == math.inf,
                        np.NINF == -math.inf, math.copysign(1, np.NZERO) == -1.0]
    out['types'] = [np.float_ is np.float64, np.complex_ is np.complex128, np.string_ is np.bytes_,
                    np.unicode_ is np.str_, np.bool8 is np.bool_, np.int0 is np.intp]
    a = np.array([[3, 1], [2, 4]])
    out['functions'] = [np.product([2, 3]), np.cumproduct([1, 2, 3]).tolist(), bool(np.alltrue([1, 1])),
                        bool(np.sometrue([0, 1])), np.round_(2.567, 1), np.mat([[1, 2]]).shape]
    out['asscalar'] = np.asscalar(np.array([7]))
    out['msort'] = np.msort(a).tolist()
    out['rank'] = np.rank(a)             # the number of dimensions, not the matrix rank
    out['in1d'] = np.in1d(a, [1, 4]).tolist()
    out['asfarray'] = str(np.asfarray([1, 2]).dtype)
    out['alen'] = [np.alen(a), np.alen(5)]
    out['trapz'] = np.trapz([1, 2, 3])
    out['bool_untouched'] = np.bool is np.bool_
    out['astype'] = str(np.array(['1', '2']).astype(np.float).dtype)
""")


def test_numpy_aliases(classic):
    r = result(classic, "numpy")
    assert r["builtins"] == [True] * 6 and r["constants"] == [True] * 5 and r["types"] == [True] * 6
    assert r["functions"] == [6, [1, 2, 6], True, True, 2.6, [1, 2]]
    assert r["asscalar"] == 7 and r["msort"] == [[2, 1], [3, 4]] and r["rank"] == 2
    assert r["in1d"] == [False, True, False, True] and r["asfarray"] == "float64"
    assert r["alen"] == [2, 1] and r["trapz"] == 4.0 and r["bool_untouched"] and r["astype"] == "float64"


# -- pickle ----------------------------------------------------------------------------------------------

# What Python 2 wrote for pickle.dumps('caf\xe9', 2) and pickle.dumps(np.array([1.0, 2.0]), 2): a py2
# str is a SHORT_BINSTRING ('U'), which Python 3 decodes as ASCII by default and fails on.
PY2_STR = b"\x80\x02U\x04caf\xe9q\x00."
PY2_ARRAY = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85U\x01b\x87Rq\x03"
             b"(K\x01K\x02\x85cnumpy\ndtype\nq\x04U\x02f8K\x00K\x01\x87Rq\x05(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff"
             b"\xff\xff\xffK\x00tb\x89U\x10\x00\x00\x00\x00\x00\x00\xf0?\x00\x00\x00\x00\x00\x00\x00@tb.")

case("pickle", f"""
    PY2_STR, PY2_ARRAY = {PY2_STR!r}, {PY2_ARRAY!r}
    out['str'] = pickle.loads(PY2_STR)
    out['array'] = pickle.loads(PY2_ARRAY).tolist()
    f = io.BytesIO(b'head' + PY2_ARRAY + b'tail')
    f.read(4)
    out['file'] = pickle.load(f).tolist()
    out['file_rest'] = f.read().decode()              # read from where the file stood, to the pickle's end
    try:
        pickle.loads(PY2_STR, encoding='ascii')       # an explicit encoding is not second-guessed
    except UnicodeDecodeError:
        out['explicit_encoding_kept'] = True

    class Stream:                                     # cannot seek: no retry
        def __init__(self, data): self.f = io.BytesIO(data)
        def read(self, n=-1): return self.f.read(n)
        def readline(self): return self.f.readline()
        def seekable(self): return False
    try:
        pickle.load(Stream(PY2_STR))
    except UnicodeDecodeError:
        out['unseekable_raises'] = True
    out['py3'] = pickle.loads(pickle.dumps({{'k': [1, 2]}}))
""")


def test_python2_pickles_load(classic):
    r = result(classic, "pickle")
    assert r["str"] == "café" and r["array"] == [1.0, 2.0]
    assert r["file"] == [1.0, 2.0] and r["file_rest"] == "tail"
    assert r["explicit_encoding_kept"] and r["unseekable_raises"] and r["py3"] == {"k": [1, 2]}


# -- frequency aliases -------------------------------------------------------------------------------------
# pandas 0.18 offset aliases: M month end, BM business month end, SM semi-month end (0.19), CBM custom
# business month end, Q quarter end, BQ business quarter end, A year end, BA business year end, AS year
# start, H hourly, BH business hour, T/min minutely, S secondly, L/ms milliseconds, U microseconds,
# N nanoseconds; anchored Q-NOV, A-JUN...; multiples 15T, 2H. pandas 3 refuses most of these for offsets.

case("freq_aliases", """
    def days(idx):
        return [str(t.date()) for t in idx]
    rng = pd.date_range(start='1/1/1995', periods=228, freq='M')   # a real classic script
    out['classic'] = [str(rng[0].date()), str(rng[-1].date()), bool(rng.is_month_end.all()), rng.freqstr]
    r = lambda f, start='2016-01-01': days(pd.date_range(start, periods=2, freq=f))
    out['ends'] = {f: r(f) for f in ('M', 'BM', 'SM', 'CBM', 'Q', 'BQ', 'A', 'Y', 'BA', 'BY', 'AS', 'BAS',
                                     'Q-NOV', 'A-JUN', 'BA-JUN', '2M', '2BQ-MAR')}
    t = lambda f, start='2016-01-04 09:00': [str(x.time()) for x in pd.date_range(start, periods=2, freq=f)]
    out['ticks'] = {f: t(f) for f in ('H', '2H', 'BH', 'T', '15T', 'min', 'S', 'L', 'U', '1H30T')}
    out['nanos'] = pd.date_range('2016-01-01', periods=2, freq='5N')[1].nanosecond
    out['business_hours'] = [str(x) for x in pd.date_range('2016-01-01 16:00', periods=2, freq='BH')]  # a Friday
    out['keyword_and_positional'] = [days(pd.date_range('2016-01-01', None, 2, 'M')),
                                     days(pd.bdate_range('2016-01-01', periods=2, freq='BM')),
                                     [str(x) for x in pd.timedelta_range(0, periods=2, freq='H')]]
    out['periods'] = [str(pd.period_range('2016', periods=2, freq='A')), str(pd.period_range('2016-01', periods=2, freq='M')),
                      str(pd.Period('2016', freq='A')), str(pd.Period('2016-01-01 10:00', 'H')),
                      str(pd.PeriodIndex(['2016', '2017'], freq='A'))]
    s = pd.Series(range(48), index=pd.date_range('2016-01-01', periods=48, freq='h'))
    out['resample'] = [s.resample('D').sum().tolist(), s.resample('12H').sum().tolist(),
                       s.resample('12H', how='sum').tolist(), s.resample('M').sum().index.tolist(),
                       s.resample('6H', base=3).sum().index[:2].tolist()]
    out['grouper'] = [s.groupby(pd.Grouper(freq='M')).sum().tolist(), s.groupby(pd.TimeGrouper('12H')).sum().tolist()]
    out['asfreq'] = [str(i) for i in s.asfreq('6H').index[:2]] + [len(s.to_frame().asfreq('30T'))]
    out['shift'] = [str(s.shift(1, freq='H').index[0]), str(s.to_frame().shift(2, 'T').index[0])]
    out['tshift'] = [str(s.tshift(2).index[0]), str(s.tshift(1, freq='D').index[0]), s.tshift(0) is s]
    try:
        pd.Series([1, 2], index=[0, 1]).tshift(1)
    except ValueError as exc:
        out['tshift_no_freq'] = str(exc)
    out['to_period'] = [str(s.to_period('A').index[0]), str(s.to_frame().to_period('H').index[1]),
                        str(s.index.to_period('M')[0])]
    ps = pd.Series(range(24), index=pd.period_range('2016-01', periods=24, freq='M'))
    out['period_series'] = [ps.resample('A').sum().tolist(), str(ps.asfreq('A').index[0]), str(ps.shift(1, freq='M').index[0])]
    for label, call in (('unknown', lambda: pd.date_range('2016', periods=2, freq='XYZ')),
                        ('not_a_string', lambda: pd.date_range('2016', periods=2, freq=3.5)),
                        ('period_me', lambda: pd.period_range('2016-01', periods=2, freq='ME'))):
        try:
            call()
            out[label] = 'no error'
        except (ValueError, TypeError) as exc:
            out[label] = type(exc).__name__
    out['translate'] = [classic_compat.modern_freq(f) for f in ('M', 'm', '15T', 'Q-DEC', 'W-SUN', 'D', 'min', 'ME', 'MS')]
    out['translate_period'] = [classic_compat.modern_freq(f, period=True) for f in ('M', 'A', 'A-JUN', 'H', 'Q')]
""")


def test_old_frequency_aliases_give_what_0_18_gave(classic):
    r = result(classic, "freq_aliases")
    assert r["classic"] == ["1995-01-31", "2013-12-31", True, "ME"]
    assert r["ends"] == {
        "M": ["2016-01-31", "2016-02-29"], "BM": ["2016-01-29", "2016-02-29"], "SM": ["2016-01-15", "2016-01-31"],
        "CBM": ["2016-01-29", "2016-02-29"], "Q": ["2016-03-31", "2016-06-30"], "BQ": ["2016-03-31", "2016-06-30"],
        "A": ["2016-12-31", "2017-12-31"], "Y": ["2016-12-31", "2017-12-31"], "BA": ["2016-12-30", "2017-12-29"],
        "BY": ["2016-12-30", "2017-12-29"], "AS": ["2016-01-01", "2017-01-01"], "BAS": ["2016-01-01", "2017-01-02"],
        "Q-NOV": ["2016-02-29", "2016-05-31"], "A-JUN": ["2016-06-30", "2017-06-30"],
        "BA-JUN": ["2016-06-30", "2017-06-30"], "2M": ["2016-01-31", "2016-03-31"],
        "2BQ-MAR": ["2016-03-31", "2016-09-30"]}
    assert r["ticks"] == {
        "H": ["09:00:00", "10:00:00"], "2H": ["09:00:00", "11:00:00"], "BH": ["09:00:00", "10:00:00"],
        "T": ["09:00:00", "09:01:00"], "15T": ["09:00:00", "09:15:00"], "min": ["09:00:00", "09:01:00"],
        "S": ["09:00:00", "09:00:01"], "L": ["09:00:00", "09:00:00.001000"], "U": ["09:00:00", "09:00:00.000001"],
        "1H30T": ["09:00:00", "10:30:00"]}
    assert r["nanos"] == 5 and r["business_hours"] == ["2016-01-01 16:00:00", "2016-01-04 09:00:00"]
    assert r["keyword_and_positional"] == [["2016-01-31", "2016-02-29"], ["2016-01-29", "2016-02-29"],
                                           ["0 days 00:00:00", "0 days 01:00:00"]]
    assert r["periods"] == ["PeriodIndex(['2016', '2017'], dtype='period[Y-DEC]')",
                            "PeriodIndex(['2016-01', '2016-02'], dtype='period[M]')",  # 'M' is still a period
                            "2016", "2016-01-01 10:00", "PeriodIndex(['2016', '2017'], dtype='period[Y-DEC]')"]
    assert r["resample"][:3] == [[276, 852], [66, 210, 354, 498], [66, 210, 354, 498]]
    assert r["resample"][3] == ["Timestamp('2016-01-31 00:00:00')"]  # 'M': labelled by the month's end
    assert r["resample"][4] == ["Timestamp('2015-12-31 21:00:00')", "Timestamp('2016-01-01 03:00:00')"]  # base=3
    assert r["grouper"] == [[1128], [66, 210, 354, 498]]
    assert r["asfreq"] == ["2016-01-01 00:00:00", "2016-01-01 06:00:00", 95]
    assert r["shift"] == ["2016-01-01 01:00:00", "2016-01-01 00:02:00"]
    assert r["tshift"] == ["2016-01-01 02:00:00", "2016-01-02 00:00:00", True]
    assert r["tshift_no_freq"] == "Freq was not given and was not set in the index"
    assert r["to_period"] == ["2016", "2016-01-01 01:00", "2016-01"]
    assert r["period_series"] == [[66, 210], "2016", "2016-02"]
    assert r["unknown"] == "ValueError" and r["not_a_string"] in ("ValueError", "TypeError")
    assert r["period_me"] == "ValueError"  # a modern spelling wrong for periods is not second-guessed
    assert r["translate"] == ["ME", "ME", "15min", "QE-DEC", "W-SUN", "D", "min", "ME", "MS"]
    assert r["translate_period"] == ["M", "Y", "Y-JUN", "h", "Q"]


def test_modern_frequencies_are_untouched(classic):
    m = classic["_modern_before"]
    assert classic["_modern_after"] == m
    assert m["bad_freq"] == "ValueError" and m["plot"] == 1 and m["plot_bad_kw"] == "AttributeError"


# -- matplotlib 1.5: plot(..., axes=ax) ---------------------------------------------------------------------

case("plot_axes", """
    fig, (left, right) = plt.subplots(1, 2)
    lines = plt.plot([1, 2, 3], [4, 5, 6], axes=right, color='red')   # the current axes is `right`
    out['pyplot'] = [len(left.lines), len(right.lines), lines[0].get_color(), lines[0].axes is right,
                     right.lines[0].get_ydata().tolist()]
    left.plot([0, 1], [1, 0], 'g--', axes=right)
    out['other_axes'] = [len(left.lines), len(right.lines), right.lines[1].get_linestyle()]
    left.plot([0, 1], axes=left)
    out['same_axes'] = len(left.lines)
    plt.close(fig)
""")


def test_plot_with_axes_keyword_draws_on_those_axes(classic):
    r = result(classic, "plot_axes")
    assert r["pyplot"] == [0, 1, "red", True, [4, 5, 6]]
    assert r["other_axes"] == [0, 2, "--"] and r["same_axes"] == 1


LAZY = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter('ignore')
    import pandas as pd
    from scorepub_sandbox import classic_compat
    classic_compat.install()
    out = {'loaded_at_install': 'matplotlib.axes' in sys.modules,
           'hook_first': type(sys.meta_path[0]).__name__}
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes
    out['hook_gone'] = all(type(f).__name__ != '_AfterImport' for f in sys.meta_path)
    out['wrapped'] = getattr(Axes.plot, '__classic_compat__', False)
    fig, (a, b) = plt.subplots(1, 2)
    plt.plot([1, 2], axes=b)
    out['drawn'] = [len(a.lines), len(b.lines)]
    out['finder_last'] = type(sys.meta_path[-1]).__name__
    print(json.dumps(out))
""")


def test_matplotlib_imported_after_install_is_patched_on_import(children):
    assert finished(children["lazy"]) == {"loaded_at_install": False, "hook_first": "_AfterImport", "hook_gone": True,
                                       "wrapped": True, "drawn": [0, 1], "finder_last": "_AliasFinder"}


# -- pandas.io names and pandas.parser --------------------------------------------------------------------------

case("io_names", """
    from pandas.io.json import json_normalize
    from pandas.io.common import EmptyDataError, CParserError
    from pandas.parser import CParserError as ParserCParserError
    data = [{'state': 'Florida', 'shortname': 'FL', 'info': {'governor': 'Rick Scott'},
             'counties': [{'name': 'Dade', 'population': 12345}, {'name': 'Broward', 'population': 40000},
                          {'name': 'Palm Beach', 'population': 60000}]},
            {'state': 'Ohio', 'shortname': 'OH', 'info': {'governor': 'John Kasich'},
             'counties': [{'name': 'Summit', 'population': 1234}, {'name': 'Cuyahoga', 'population': 1337}]}]
    result = json_normalize(data, 'counties', ['state', 'shortname', ['info', 'governor']])
    out['normalized'] = {c: result[c].tolist() for c in sorted(result.columns)}
    out['nested'] = json_normalize([{'a': {'b': 1, 'c': {'d': 2}}}]).to_dict('records')
    out['same'] = json_normalize is pd.json_normalize
    try:
        pd.read_csv(io.StringIO(''))
    except EmptyDataError:
        out['empty'] = True
    try:
        pd.read_csv(io.StringIO('a,b\\n1,2\\n1,2,3\\n'))
    except CParserError:
        out['cparser'] = ParserCParserError is CParserError is pd.errors.ParserError
""")


def test_moved_pandas_io_names(classic):
    r = result(classic, "io_names")
    assert r["normalized"] == {  # the 0.18 docs' example
        "info.governor": ["Rick Scott"] * 3 + ["John Kasich"] * 2,
        "name": ["Dade", "Broward", "Palm Beach", "Summit", "Cuyahoga"],
        "population": [12345, 40000, 60000, 1234, 1337],
        "shortname": ["FL"] * 3 + ["OH"] * 2, "state": ["Florida"] * 3 + ["Ohio"] * 2}
    assert r["nested"] == [{"a.b": 1, "a.c.d": 2}] and r["same"]
    assert r["empty"] and r["cparser"]


# -- pandas.tools.rplot -----------------------------------------------------------------------------------------

case("rplot", """
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        import pandas.tools.rplot as rplot
    out['warned'] = [w.category.__name__ for w in caught if 'rplot' in str(w.message)]
    df = pd.DataFrame({'a': ['p'] * 9 + ['q'] * 9, 'b': (['u'] * 3 + ['v'] * 3 + ['w'] * 3) * 2,
                       'x': np.arange(18.), 'y': np.arange(18.) ** 2})
    plt.figure()
    plot = rplot.RPlot(df, x='x', y='y')
    plot.add(rplot.TrellisGrid(['a', 'b']))
    plot.add(rplot.GeomScatter(colour='red', alpha=0.5))
    plot.add(rplot.GeomPolyFit(degree=2))
    fig = plot.render()
    out['gcf'] = fig is plt.gcf()
    out['geometry'] = [list(ax.get_subplotspec().get_gridspec().get_geometry()) for ax in fig.axes][:1]
    out['cells'] = [ax.collections[0].get_offsets().tolist() for ax in fig.axes]
    out['labels'] = [sorted(c.get_text().get_text() for c in ax.tables[0].get_celld().values()) for ax in fig.axes]
    out['fit'] = [[len(ax.lines), ax.lines[0].get_ydata().round(6).tolist()] for ax in fig.axes][:1]
    out['scatter_style'] = [fig.axes[0].collections[0].get_facecolors().round(3).tolist(),
                            fig.axes[0].collections[0].get_alpha()]
    out['shared_limits'] = len({ax.get_ylim() for ax in fig.axes}) == 1
    out['ticks'] = [[len(ax.get_xticks()) > 0, len(ax.get_yticks()) > 0] for ax in fig.axes]
    shapes = []
    for by in (['a', '.'], ['.', 'b']):
        f = plt.figure()
        p = rplot.RPlot(df, x='x', y='y')
        p.add(rplot.TrellisGrid(by))
        p.add(rplot.GeomHistogram(bins=3))
        p.add(rplot.GeomDensity())
        out_fig = p.render(f)
        shapes.append([out_fig is f, list(f.axes[0].get_subplotspec().get_gridspec().get_geometry()),
                       [sum(patch.get_height() for patch in ax.patches) for ax in f.axes], len(f.axes[0].lines)])
    out['one_side'] = shapes
    f = plt.figure()
    p = rplot.RPlot(df, x='x', y='y')
    p.add(rplot.GeomPoint(colour=rplot.ScaleRandomColour('a'), shape=rplot.ScaleShape('b'),
                          size=rplot.ScaleSize('x', min_size=10.0, max_size=100.0)))
    p.render(f)
    out['points'] = [len(f.axes[0].collections), f.axes[0].collections[-1].get_sizes().tolist(),
                     len(f.legends), f.axes[0].get_xlabel()]
    try:
        rplot.TrellisGrid(['.', '.'])
    except ValueError as exc:
        out['two_dots'] = str(exc)
    try:
        rplot.RPlot(df).add('not a layer')
    except TypeError:
        out['add_type'] = True
    plt.close('all')
""")


def test_rplot_trellis(classic):
    r = result(classic, "rplot")
    assert r["warned"] == ["FutureWarning"] and r["gcf"] and r["geometry"] == [[2, 3]]
    assert r["cells"] == [[[3.0 * k + i, (3.0 * k + i) ** 2] for i in range(3)] for k in range(6)]
    assert r["labels"] == [[f"a = {a}", f"b = {b}"] for a in "pq" for b in "uvw"]
    assert r["fit"] == [[1, [0.0, 1.0, 4.0]]]  # degree 2 through (0, 0), (1, 1), (2, 4), over x's range
    assert r["scatter_style"] == [[[1.0, 0.0, 0.0, 0.5]], 0.5] and r["shared_limits"]
    assert r["ticks"] == [[False, True], [False, False], [False, False], [True, True], [True, False], [True, False]]
    assert r["one_side"] == [[True, [2, 1], [9, 9], 1], [True, [1, 3], [6, 6, 6], 1]]
    assert r["points"] == [18, [100.0], 1, "x"]
    assert r["two_dots"] == "At least one of grouping attributes must be not a dot" and r["add_type"]
