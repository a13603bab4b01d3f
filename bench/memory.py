"""What sandboxed services cost in memory: N trivial services published, served and called.

    python bench/memory.py [--services 12] [--web-workers 2]

Starts ``scorepub serve`` (sandbox strict, production defaults) in a temporary SCOREPUB_HOME,
publishes N copies of a one-line ``azureml_main``, calls each one a few times, then sums the
proportional set size (PSS, ``/proc/PID/smaps_rollup``) of the sandbox processes (templates,
zygotes and workers: the pool host's descendants) and of the web processes. PSS divides a page
shared by several processes among them, so the figures add up to what the machine really holds.
Prints one JSON object; nothing is asserted (issue 12's goal is <= 30 MiB per service).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = "import pandas as pd\n\ndef azureml_main(df):\n    df['y'] = df['x'] * 2\n    return df,\n"
SCHEMA = {"inputs": {"input1": {"columns": [{"name": "x", "type": "double"}]}}}


def rollup(pid: int) -> dict:
    """``/proc/PID/smaps_rollup`` in KiB (empty when the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    return {line.split(":")[0]: int(line.split()[1]) for line in lines}


def pss_kib(pid: int) -> int:
    return rollup(pid).get("Pss", 0)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (through /proc/PID/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except FileNotFoundError:
                kids = []
            found += kids
            todo += kids
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=12)
    ap.add_argument("--web-workers", type=int, default=2)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="scorepub-memory-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREPUB_")}
    env.update(SCOREPUB_HOME=str(home), SCOREPUB_WEB_WORKERS=str(args.web_workers))
    folder = home / "experiment"
    folder.mkdir()
    (folder / "score.py").write_text(SCRIPT)
    (folder / "schema.json").write_text(json.dumps(SCHEMA))
    keys = {}
    for i in range(args.services):
        out = subprocess.run([sys.executable, "-m", "serving.cli", "publish", str(folder), "--name", f"svc{i}",
                              "--json", "--no-smoke"], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
        keys[f"svc{i}"] = json.loads(out.stdout)["keys"]["primary"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "serving.cli", "serve", "--port", str(port)], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/readyz", timeout=30).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        for name, key in keys.items():
            for _ in range(4):
                r = requests.post(f"{url}/services/{name}/score", json=[{"x": 1.5}],
                                  headers={"Authorization": f"Bearer {key}"}, timeout=120)
                r.raise_for_status()
        time.sleep(1)
        pids = [server.pid, *descendants(server.pid)]
        host = [p for p in pids if "serving.runtime.host" in cmdline(p)]
        sandbox = {p for h in host for p in descendants(h)}
        web = [p for p in pids if p not in sandbox and p not in host]
        sandbox_kib = sum(pss_kib(p) for p in sandbox)
        report = {"services": args.services, "web_workers": args.web_workers,
                  "sandbox_processes": len(sandbox), "sandbox_pss_mib": round(sandbox_kib / 1024, 1),
                  "sandbox_pss_mib_per_service": round(sandbox_kib / 1024 / args.services, 1),
                  "pool_host_pss_mib": round(sum(pss_kib(p) for p in host) / 1024, 1),
                  "web_pss_mib": round(sum(pss_kib(p) for p in web) / 1024, 1)}
        if os.environ.get("MEMORY_DETAIL"):
            for p in sorted(sandbox):
                r = rollup(p)
                print(p, {k: r.get(k, 0) // 1024 for k in ("Rss", "Pss", "Private_Dirty")}, file=sys.stderr)
        print(json.dumps(report, indent=2))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
