"""Profile scorepub's hot path under load with py-spy (sampling, whole server tree).

    python bench/profile.py [--scenario 1row-c8] [--seconds 15] [--out /tmp/scorepub-profile]
                            [--py-spy PATH]

Publishes the bench experiment into a temporary SCOREPUB_HOME, starts ``scorepub serve`` with
the same production settings as ``bench/run.py``, drives one of run.py's scenarios with the same
load generator, and records every process of the server (gunicorn web processes, sandbox
templates, workers) with ``py-spy record --subprocesses --nonblocking --gil``: only samples that
hold the GIL count, since py-spy cannot tell idle threads of processes in another PID namespace
(the sandbox's) from busy ones. Writes the collapsed
stacks (``<scenario>.txt``, which speedscope and flamegraph.pl read) and prints the functions with
the most samples, self and inclusive, per kind of process. py-spy is not a scorepub dependency:
install it anywhere (``pip install --target /tmp/pyspy py-spy``) and pass ``--py-spy``.
"""
from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402


ROLES = {1: "gunicorn master", 2: "web process", 3: "zygote", 4: "template"}


def role(frames: list[str]) -> tuple[str, list[str]]:
    """The kind of process a stack belongs to (by its depth in the server tree) and its Python frames."""
    depth = 0
    while depth < len(frames) and frames[depth].startswith("process "):
        depth += 1
    return ROLES.get(depth, "worker"), frames[depth:]


def cpu_by_role(root: int) -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds, with reaped children, of each kind of process in the server tree."""
    members = bench.tree(root)
    out: dict[str, tuple[float, float]] = {}
    for pid in members:
        depth, p = 0, pid
        while p != root and p in members:
            p = members[p][0]
            depth += 1
        kind = ROLES.get(depth + 1, "worker")
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        f = raw[raw.rfind(")") + 2:].split()
        user = (int(f[11]) + int(f[13])) / bench.CLK_TCK
        system = (int(f[12]) + int(f[14])) / bench.CLK_TCK
        u, s = out.get(kind, (0.0, 0.0))
        out[kind] = (u + user, s + system)
    return out


def summarize(collapsed: Path, top: int) -> str:
    self_counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    incl_counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    totals: collections.Counter = collections.Counter()
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        kind, frames = role(stack.split(";"))
        # py-spy's frames: "function (file:line)"; drop the line for aggregation
        names = [re.sub(r":\d+\)$", ")", f) for f in frames] or ["?"]
        totals[kind] += n
        self_counts[kind][names[-1]] += n
        for name in set(names):
            incl_counts[kind][name] += n
    grand = sum(totals.values())
    out = [f"{grand} samples holding the GIL: "
           + ", ".join(f"{k} {100 * n / grand:.1f}%" for k, n in totals.most_common())]
    for kind, total in totals.most_common():
        out.append(f"\n== {kind}: {total} samples ==")
        out.append("-- self --")
        for name, n in self_counts[kind].most_common(top):
            out.append(f"{100 * n / total:6.1f}%  {name}")
        out.append("-- inclusive --")
        for name, n in incl_counts[kind].most_common(top):
            out.append(f"{100 * n / total:6.1f}%  {name}")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scenario", default="1row-c8", choices=[s.key for s in bench.SCENARIOS])
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--out", default="/tmp/scorepub-profile")
    p.add_argument("--py-spy", default=shutil.which("py-spy") or "/tmp/pyspy/bin/py-spy")
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args()
    scenario = next(s for s in bench.SCENARIOS if s.key == args.scenario)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    opts = argparse.Namespace(quick=True, duration=None, loadgen="auto", mlflow_version=bench.MLFLOW_VERSION,
                              mlflow_workers=None, keep=False, out=str(out))
    b = bench.Bench(opts)
    server = None
    try:
        loadgen = bench.pick_loadgen("auto")
        b.publish_scorepub()
        server = b.start_scorepub()
        b.servers["scorepub"] = server
        server.wait_ready(180)
        payload = bench.write_payloads(b.work, [(scenario.rows, scenario.fmt)])[(scenario.rows, scenario.fmt)]
        url, ctype, headers, path = b.request_for("scorepub", payload, scenario.service)
        loadgen.run(server.port, url, path, ctype, headers, scenario.clients, 3, b.work)  # warm up
        server.wait_idle(30)
        collapsed = out / f"{scenario.key}.txt"
        spy = subprocess.Popen([args.py_spy, "record", "--pid", str(server.proc.pid), "--subprocesses",
                                "--nonblocking", "--gil", "--rate", str(args.rate), "--duration", str(args.seconds),
                                "--format", "raw", "--output", str(collapsed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        cpu0, roles0 = server.cpu(), cpu_by_role(server.proc.pid)
        web0 = {pid: cpu for pid, (ppid, cpu, _) in bench.tree(server.proc.pid).items() if ppid == server.proc.pid}
        stats = loadgen.run(server.port, url, path, ctype, headers, scenario.clients, args.seconds - 2, b.work)
        server.wait_idle(30)
        cpu, roles = server.cpu() - cpu0, cpu_by_role(server.proc.pid)
        _, err = spy.communicate(timeout=args.seconds + 60)
        if spy.returncode != 0:
            print(err[-2000:], file=sys.stderr)
        print(f"{scenario.title}: {stats['requests']} requests, {stats['requests'] / (stats['duration_us'] / 1e6):.1f} "
              f"req/s, p50 {stats['p50_us'] / 1000:.2f} ms, p99 {stats['p99_us'] / 1000:.2f} ms, "
              f"CPU {cpu * 1000 / max(1, stats['requests']):.2f} ms/request (under py-spy): "
              + ", ".join(f"{k} {d[0] + d[1]:.2f} (user {d[0]:.2f}, sys {d[1]:.2f})" for k, d in (
                  (k, [(roles.get(k, (0, 0))[i] - roles0.get(k, (0, 0))[i]) * 1000 / max(1, stats["requests"])
                       for i in (0, 1)]) for k in sorted(set(roles) | set(roles0))) if d[0] + d[1] > 0.005))
        web = {pid: cpu - web0.get(pid, 0.0) for pid, (ppid, cpu, _) in bench.tree(server.proc.pid).items()
               if ppid == server.proc.pid}
        print("CPU seconds per web process (with its sandbox children): "
              + ", ".join(f"{pid}: {cpu:.2f}" for pid, cpu in sorted(web.items())))
        text = summarize(collapsed, args.top)
        (out / f"{scenario.key}-summary.txt").write_text(text)
        print(text)
    finally:
        if server is not None:
            server.stop()
        b.cleanup()


if __name__ == "__main__":
    main()
