"""Runtime overheads (issue 5): worker fork time, per-call isolation cost, and the 1-row round
trip through the sandboxed runtime against calling ``azureml_main`` in-process.

    .venv/bin/python bench/runtime.py [--calls N]

Prints a Markdown table; numbers are medians (and p99) over N calls on this machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from publisher import artifact  # noqa: E402
from publisher.coercion import rows_to_table  # noqa: E402
from publisher.schema import parse_schema  # noqa: E402
from publisher.settings import Settings  # noqa: E402
from serving.runtime.dispatcher import Runtime  # noqa: E402

SCRIPT = b"import pandas as pd\n\ndef azureml_main(df):\n    df['y'] = df['x'] * 2\n    return df,\n"


def schema_doc(isolation: str) -> dict:
    return {"inputs": {"input1": {"columns": [{"name": "x", "type": "double"}]}}, "isolation": isolation}


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(runtime, digest, schema, table, calls):
    runtime.call(digest, schema, [table], {})  # warm up: template and workers ready
    time.sleep(0.5)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        runtime.call(digest, schema, [table], {})
        times.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.01)  # let a per-call pool fork its replacement, as between real requests
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="scorepub-bench-"))
    settings = dataclasses.replace(Settings.from_env({"SCOREPUB_HOME": str(home)}), pool_size=1)
    rows = {}
    results = {}
    for isolation in ("warm", "per-call"):
        doc = schema_doc(isolation)
        schema = parse_schema(doc)
        digest, data = artifact.build(f"bench-{isolation}", {"score.py": SCRIPT, "schema.json": orjson.dumps(doc)},
                                      {}, {})
        runtime = Runtime(settings, {digest: data}.__getitem__)
        table = rows_to_table("input1", schema.inputs["input1"], [{"x": 1.5}], settings.max_rows)
        results[isolation] = measure(runtime, digest, schema, table, args.calls)
        status = runtime.pools[digest].status()
        rows[isolation] = status
        runtime.close()
    # in-process baseline: the same function on the same frame, no runtime at all
    namespace: dict = {}
    exec(compile(SCRIPT, "score.py", "exec"), namespace)
    schema = parse_schema(schema_doc("warm"))
    frame = rows_to_table("input1", schema.inputs["input1"], [{"x": 1.5}], settings.max_rows).to_frame()
    inproc = []
    for _ in range(args.calls):
        t0 = time.perf_counter()
        namespace["azureml_main"](frame.copy())
        inproc.append((time.perf_counter() - t0) * 1000)
    med = {k: statistics.median(v) for k, v in results.items()}
    base = statistics.median(inproc)
    print(f"Machine: {platform.node()} {platform.machine()}, {platform.python_version()}, "
          f"{len(__import__('os').sched_getaffinity(0))} cores; {args.calls} calls each\n")
    print("| measure | median ms | p99 ms |")
    print("| --- | ---: | ---: |")
    print(f"| worker fork from the template (warm pool) | {rows['warm']['fork_ms_p50']} | |")
    print(f"| worker fork from the template (per-call pool) | {rows['per-call']['fork_ms_p50']} | |")
    print(f"| `azureml_main` in-process, 1 row | {base:.3f} | {percentile(inproc, 0.99):.3f} |")
    for k in ("warm", "per-call"):
        print(f"| runtime round trip, 1 row, {k} | {med[k]:.3f} | {percentile(results[k], 0.99):.3f} |")
    print(f"| runtime overhead over in-process (warm) | {med['warm'] - base:.3f} | |")
    print(f"| per-call isolation overhead over warm | {med['per-call'] - med['warm']:.3f} | |")


if __name__ == "__main__":
    main()
