"""Per-version environments (issue 13): what one costs to build, on disk, and at run time.

    .venv/bin/python bench/environments.py [--calls N] [--requirements "scikit-learn==1.5.2 tabulate"]

Builds a typical environment (the classic set + the requirements) twice: with an empty uv cache
(cold: every wheel downloaded) and with the cache it left (warm), then publishes the same
requirements again (resolution cached, environment found). Then the same script runs in the
default environment and in the custom one: template start to the first answer, worker fork,
and the warm 1-row round trip (medians over N calls), with the custom/default ratios.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from publisher import artifact  # noqa: E402
from publisher.coercion import rows_to_table  # noqa: E402
from publisher.environments import Environments, pinned  # noqa: E402
from publisher.schema import parse_schema  # noqa: E402
from publisher.settings import Settings  # noqa: E402
from serving.runtime.dispatcher import Runtime  # noqa: E402

SCRIPT = b"import pandas as pd\n\ndef azureml_main(df):\n    df['y'] = df['x'] * 2\n    return df,\n"
DOC = {"inputs": {"input1": {"columns": [{"name": "x", "type": "double"}]}}, "isolation": "per-call"}


def settings_in(root: Path, name: str) -> Settings:
    home = root / name
    return dataclasses.replace(Settings.from_env({"SCOREPUB_HOME": str(home), "SCOREPUB_ENV_DIR": str(home / "envs")}),
                               pool_size=1)


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def build(settings: Settings, requirements: bytes, uv_cache: Path) -> dict:
    os.environ["UV_CACHE_DIR"] = str(uv_cache)  # uv's own variable: the cache to start from
    envs = Environments(settings)
    resolution, resolve_s = timed(lambda: envs.resolve(requirements))
    env, install_s = timed(lambda: envs.ensure(resolution.lock))
    info = env.info()
    return {"lock": resolution.lock, "resolve_s": resolve_s, "install_s": install_s,
            "size_mb": info["size_bytes"] / 2**20, "packages": len(info["packages"])}


def run_versions(settings: Settings, variants: dict, calls: int, starts: int = 3) -> dict:
    """Each variant's first answer (median of ``starts`` fresh runtimes), worker fork and warm
    1-row call, measured alternately so that the machine's noise falls on both alike."""
    schema = parse_schema(DOC)
    table = rows_to_table("input1", schema.inputs["input1"], [{"x": 1.5}], settings.max_rows)
    built = {name: artifact.build(f"bench-{name}", members, {}, {}) for name, members in variants.items()}
    out = {name: {"first": [], "calls": []} for name in variants}
    for _ in range(starts):
        for name, (digest, data) in built.items():
            runtime = Runtime(settings, {digest: data}.__getitem__)
            try:
                out[name]["first"].append(timed(lambda: runtime.call(digest, schema, [table], {}))[1] * 1000)
            finally:
                runtime.close()
    runtimes = {name: Runtime(settings, {digest: data}.__getitem__) for name, (digest, data) in built.items()}
    try:
        for name, (digest, _) in built.items():
            runtimes[name].call(digest, schema, [table], {})
        time.sleep(0.5)
        for _ in range(calls):
            for name, (digest, _) in built.items():
                t0 = time.perf_counter()
                runtimes[name].call(digest, schema, [table], {})
                out[name]["calls"].append((time.perf_counter() - t0) * 1000)
                time.sleep(0.01)  # the per-call pool forks the next worker meanwhile, as between requests
        return {name: {"first_ms": statistics.median(o["first"]), "call_ms": statistics.median(o["calls"]),
                       "fork_ms": runtimes[name].pools[built[name][0]].status()["fork_ms_p50"]}
                for name, o in out.items()}
    finally:
        for runtime in runtimes.values():
            runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--requirements", default="scikit-learn==1.5.2 tabulate")
    args = parser.parse_args()
    requirements = "".join(f"{r}\n" for r in args.requirements.split()).encode()
    root = Path(tempfile.mkdtemp(prefix="scorepub-bench-envs-"))
    root.chmod(0o755)  # the sandbox's uids read the environments
    try:
        cold_cache = root / "uv-cache"
        cold = build(settings_in(root, "cold"), requirements, cold_cache)
        warm = build(settings_in(root, "warm"), requirements, cold_cache)
        again_settings = settings_in(root, "warm")
        again, again_s = timed(lambda: Environments(again_settings).ensure(Environments(again_settings).resolve(requirements).lock))
        members = {"score.py": SCRIPT, "schema.json": orjson.dumps(DOC)}
        measured = run_versions(settings_in(root, "warm"),
                                {"default": members, "custom": {**members, "requirements.lock": warm["lock"]}}, args.calls)
        default, custom = measured["default"], measured["custom"]
    finally:
        os.environ.pop("UV_CACHE_DIR", None)
        shutil.rmtree(root, ignore_errors=True)
    packages = pinned(warm["lock"])
    print(f"Machine: {platform.node()} {platform.machine()}, Python {platform.python_version()}, "
          f"{len(os.sched_getaffinity(0))} cores. Requirements: {args.requirements} "
          f"(+ the classic set: {warm['packages']} packages; numpy {packages.get('numpy')}, pandas {packages.get('pandas')})\n")
    print("| build | resolve s | install s | total s | size MB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, b in (("uv cache cold", cold), ("uv cache warm", warm)):
        print(f"| {name} | {b['resolve_s']:.2f} | {b['install_s']:.2f} | {b['resolve_s'] + b['install_s']:.2f} | "
              f"{b['size_mb']:.0f} |")
    print(f"| same requirements again (shared) | | | {again_s:.4f} | 0 more |")
    print(f"\n| run time ({args.calls} calls, per-call isolation) | default | custom | custom / default |")
    print("| --- | ---: | ---: | ---: |")
    for key, label in (("first_ms", "template start to first answer, ms (median of 3)"), ("fork_ms", "worker fork, ms (p50)"),
                       ("call_ms", "1-row call, ms (median)")):
        print(f"| {label} | {default[key]:.2f} | {custom[key]:.2f} | {custom[key] / default[key]:.2f} |")


if __name__ == "__main__":
    main()
