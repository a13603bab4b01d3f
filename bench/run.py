"""scorepub against MLflow, side by side, on this machine (issue 7).

    python bench/run.py [--quick] [--out bench/results]

Run it with the Python that has scorepub installed (``.venv/bin/python``). It:

1. publishes ``bench/experiment`` into a temporary SCOREPUB_HOME three ways: ``bench`` (warm), the
   same script as ``bench-per-call`` (``"isolation": "per-call"``); version 2 of ``bench`` is
   published and promoted during the promote scenario;
2. starts ``scorepub serve`` with production settings (sandbox strict, SCOREPUB_WEB_WORKERS=2,
   default threads and pool size) on 127.0.0.1;
3. installs MLflow into its own virtualenv (cached in ~/.cache/scorepub-bench/mlflow-venv), saves
   the same ``azureml_main`` as an ``mlflow.pyfunc.PythonModel`` and starts
   ``mlflow models serve --env-manager local`` (its default worker count unless
   ``--mlflow-workers`` says otherwise) on 127.0.0.1;
4. checks both answer every payload with the same numbers, then drives both with the same load
   generator (``wrk`` if installed, installed with apt-get when missing and running as root;
   otherwise ``bench/loadgen.py``), keep-alive, loopback only, each run bounded in time;
5. prints a Markdown table (requests/s, rows/s, p50/p99 latency, server CPU ms per request,
   errors, scorepub/MLflow ratios, the issue's targets) and writes it to
   ``<out>/<timestamp>.md`` (plus the raw figures as ``.json``).

Exit status: 0, or 1 when a server fails to start, the two servers disagree on an answer, the
load generator fails, or the promote scenario has a failed request. Timings are reported,
never asserted: the targets are printed as met / not met and do not change the exit status.
Both servers are always stopped (their whole process trees), whatever happens.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import http.client
import importlib.metadata
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
EXPERIMENT = BENCH / "experiment"
HOST = "127.0.0.1"

# 3.18.0 is listed on the index but its mlflow-skinny==3.18.0 is not, so it does not install;
# 3.17.2 installs on Debian's Python 3.11 with numpy 2 and pandas 3.
MLFLOW_VERSION = "3.17.2"
CACHE = Path(os.environ.get("SCOREPUB_BENCH_CACHE") or Path.home() / ".cache" / "scorepub-bench")
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}  # no traffic off this machine

COLUMNS = ["id", "x1", "x2", "x3", "label"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


class HarnessError(Exception):
    """Something that makes the run invalid: exit 1."""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------------------------

def _proc_table() -> dict[int, tuple[int, float, int]]:
    """pid -> (ppid, cpu seconds incl. reaped children, start time) for every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                raw = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = raw[raw.rfind(")") + 2:].split()
        # rest[0] is field 3 (state): ppid = field 4, utime..cstime = fields 14..17, starttime = 22
        ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
        table[int(entry)] = (int(rest[1]), ticks / CLK_TCK, int(rest[19]))
    return table


def tree(root: int) -> dict[int, tuple[int, float, int]]:
    """``root`` and all its descendants, from /proc."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in table and pid not in out:
            out[pid] = table[pid]
            todo.extend(children.get(pid, []))
    return out


def tree_cpu(root: int) -> float:
    """User + system CPU seconds of a process tree: live processes plus the children they reaped."""
    return sum(cpu for _, cpu, _ in tree(root).values())


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class CpuMeter:
    """CPU seconds a server's process tree uses between ``start()`` and ``stop()``.

    The sum over the tree of each process's own and reaped children's CPU time is exact while
    every process that ends is reaped by a member of the tree. When a sandbox pool is closed
    (a promote retires the old version's pool), its zygote is killed and the template and workers
    in its PID namespace die unreaped by the tree: their CPU is added back from the last time a
    sampler thread (every 0.2 s) saw them.
    """

    def __init__(self, root: int):
        self.root = root
        self.seen: dict[tuple[int, int], tuple[tuple[int, int] | None, float]] = {}
        self._stop = threading.Event()

    def _snapshot(self) -> dict[tuple[int, int], float]:
        members = tree(self.root)
        keys = {pid: (pid, start) for pid, (_, _, start) in members.items()}
        snap = {}
        for pid, (ppid, cpu, start) in members.items():
            self.seen[(pid, start)] = (keys.get(ppid), cpu)
            snap[(pid, start)] = cpu
        return snap

    def start(self) -> None:
        self.before = self._snapshot()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self._snapshot()

    def stop(self) -> float:
        self._stop.set()
        self.thread.join()
        after = self._snapshot()
        lost = sum(cpu for key, (parent, cpu) in self.seen.items()
                   if key not in after and (parent is None or parent not in after) and key[0] != self.root)
        return sum(after.values()) - sum(self.before.values()) + lost


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """A server started in its own session (process group); stopped with its whole tree."""

    def __init__(self, name: str, argv: list[str], env: dict, cwd: Path, log_path: Path, port: int,
                 health: str):
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd
        self.log_path, self.port, self.health = log_path, port, health
        self.proc: subprocess.Popen | None = None
        self.start_s = None

    def start(self) -> None:
        self.t0 = time.monotonic()
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float) -> None:
        deadline = self.t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"{self.name} exited with status {self.proc.returncode} before it was ready:\n"
                                   + self.log_tail())
            try:
                status, _, _ = http_request(self.port, "GET", self.health, timeout=5)
                if status == 200:
                    self.start_s = time.monotonic() - self.t0
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise HarnessError(f"{self.name} was not ready after {timeout:.0f} s:\n" + self.log_tail())

    def log_tail(self, n: int = 25) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join("    " + line for line in lines[-n:])

    def cpu(self) -> float:
        return tree_cpu(self.proc.pid)

    def wait_idle(self, max_s: float) -> None:
        """Until the tree stops using CPU (requests abandoned by a stopped load generator are done)."""
        deadline = time.monotonic() + max_s
        last = self.cpu()
        while time.monotonic() < deadline:
            time.sleep(0.3)
            now = self.cpu()
            if now - last <= 0.02:
                return
            last = now

    def stop(self) -> None:
        if self.proc is None:
            return
        members = tree(self.proc.pid)
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        # anything of the tree left (e.g. sandbox templates, which run in sessions of their own)
        time.sleep(0.5)
        now = _proc_table()
        for pid, (_, _, start) in members.items():
            if pid in now and now[pid][2] == start:  # the same process, not a reused pid
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self._log.close()


def http_request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                 timeout: float = 120) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def run_cmd(argv, env=None, cwd=REPO, timeout=600) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise HarnessError(f"command failed ({proc.returncode}): {' '.join(map(str, argv))}\n"
                           f"{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
    return proc


# -- MLflow ----------------------------------------------------------------------------------

def ensure_mlflow(version: str) -> tuple[Path, float | None]:
    """The MLflow virtualenv's python, and the seconds an install took (None when cached)."""
    venv = CACHE / "mlflow-venv"
    python = venv / "bin" / "python"
    marker = venv / ".scorepub-bench"
    if marker.is_file() and marker.read_text().strip() == version and python.exists():
        return python, None
    log(f"installing mlflow=={version} into {venv} (first run only)")
    t0 = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    run_cmd([sys.executable, "-m", "venv", str(venv)])
    run_cmd([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", f"mlflow=={version}"],
            timeout=1800)
    marker.write_text(version + "\n")
    took = time.monotonic() - t0
    log(f"mlflow installed in {took:.0f} s")
    return python, took


def mlflow_versions(python: Path) -> dict:
    code = ("import json, importlib.metadata as m; print(json.dumps({p: m.version(p) for p in "
            "('mlflow', 'pandas', 'numpy', 'uvicorn', 'fastapi')}))")
    return json.loads(run_cmd([str(python), "-c", code]).stdout)


# -- load generators -------------------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "POST"
local f = assert(io.open(%(body)s, "rb"))
wrk.body = f:read("*a")
f:close()
%(headers)s
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %%.0f, "duration_us": %%.0f, "bytes": %%.0f, "connect": %%.0f, ' ..
    '"read": %%.0f, "write": %%.0f, "status": %%.0f, "timeout": %%.0f, "p50_us": %%.0f, "p90_us": %%.0f, ' ..
    '"p99_us": %%.0f, "max_us": %%.0f, "mean_us": %%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LoadGen:
    def __init__(self, kind: str, version: str):
        self.kind, self.version = kind, version

    def argv(self, port: int, path: str, body_file: Path, content_type: str, headers: dict, clients: int,
             duration: float, workdir: Path) -> tuple[list[str], str]:
        if self.kind == "wrk":
            hdrs = {"Content-Type": content_type, **headers}
            script = WRK_SCRIPT % {"body": lua_string(str(body_file)),
                                   "headers": "\n".join(f"wrk.headers[{lua_string(k)}] = {lua_string(v)}"
                                                        for k, v in hdrs.items())}
            lua = workdir / f"wrk-{abs(hash((str(body_file), content_type, tuple(hdrs.items()))))}.lua"
            lua.write_text(script)
            return (["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(duration))}s", "--timeout", "120s",
                     "-s", str(lua), f"http://{HOST}:{port}{path}"], "WRKJSON ")
        argv = [sys.executable, str(BENCH / "loadgen.py"), "--port", str(port), "--path", path,
                "--body-file", str(body_file), "--content-type", content_type, "--connections", str(clients),
                "--duration", str(duration), "--timeout", "120"]
        for k, v in headers.items():
            argv += ["--header", f"{k}: {v}"]
        return argv, "LOADJSON "

    def run(self, port, path, body_file, content_type, headers, clients, duration, workdir,
            during=None) -> dict:
        """One closed-loop run. With ``during``, the run lasts until ``during()`` returns (at most
        ``duration`` seconds) and is then stopped with SIGINT."""
        argv, tag = self.argv(port, path, body_file, content_type, headers, clients, duration, workdir)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            if during is not None:
                try:
                    during()
                finally:
                    if proc.poll() is None:
                        proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=duration + 120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        line = next((ln for ln in out.splitlines() if ln.startswith(tag)), None)
        if line is None:
            raise HarnessError(f"the load generator printed no summary (exit {proc.returncode}):\n{out[-1500:]}"
                               f"{err[-1500:]}")
        return json.loads(line[len(tag):])


def pick_loadgen(choice: str) -> LoadGen:
    if choice in ("auto", "wrk") and shutil.which("wrk") is None and os.geteuid() == 0:
        log("wrk is not installed: apt-get install -y wrk")
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=300, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, timeout=300, capture_output=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        except (subprocess.SubprocessError, OSError) as exc:
            log(f"could not install wrk ({exc}); using bench/loadgen.py")
    if choice != "python" and shutil.which("wrk"):
        first = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
        return LoadGen("wrk", (first[0].split(" [")[0] if first else "wrk"))
    if choice == "wrk":
        raise HarnessError("--loadgen wrk, but wrk is not installed and could not be")
    return LoadGen("python", "bench/loadgen.py (asyncio, one process)")


# -- payloads --------------------------------------------------------------------------------

def make_rows(n: int) -> list[list]:
    rnd = random.Random(7)
    labels = ("alpha", "beta", "gamma", "delta", "epsilon")
    return [[i, round(rnd.uniform(-3, 3), 6), round(rnd.gauss(0, 1), 6), round(rnd.uniform(0, 10), 6),
             f"{labels[i % 5]}-{i % 97}"] for i in range(n)]


def csv_text(rows) -> str:
    return ",".join(COLUMNS) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)


@dataclasses.dataclass
class Payload:
    rows: int
    fmt: str  # "json" (scorepub columns / MLflow dataframe_split) or "csv"
    files: dict  # server -> (path, content type)


def write_payloads(workdir: Path, sizes) -> dict:
    out = {}
    for n, fmt in sizes:
        rows = make_rows(n)
        files = {}
        if fmt == "json":
            bodies = {"scorepub": {"input1": {"columns": COLUMNS, "data": rows}},
                      "mlflow": {"dataframe_split": {"columns": COLUMNS, "data": rows}}}
            for server, doc in bodies.items():
                path = workdir / f"body-{server}-{n}.json"
                path.write_text(json.dumps(doc, separators=(",", ":")))
                files[server] = (path, "application/json")
        else:
            path = workdir / f"body-{n}.csv"
            path.write_text(csv_text(rows))
            files = {"scorepub": (path, "text/csv"), "mlflow": (path, "text/csv")}
        out[(n, fmt)] = Payload(n, fmt, files)
    return out


def answer_rows(server: str, fmt: str, body: bytes) -> list[tuple]:
    """(id, score, label) per row of an answer, whatever its format."""
    if server == "mlflow":
        return [(r["id"], r["score"], r["label"]) for r in json.loads(body)["predictions"]]
    if fmt == "csv":
        lines = body.decode().splitlines()
        head = lines[0].split(",")
        i, s, lab = head.index("id"), head.index("score"), head.index("label")
        return [(int(c[i]), float(c[s]), c[lab]) for c in (ln.split(",") for ln in lines[1:])]
    out = json.loads(body)["output1"]
    cols = out["columns"]
    i, s, lab = cols.index("id"), cols.index("score"), cols.index("label")
    return [(r[i], r[s], r[lab]) for r in out["data"]]


# -- scenarios -------------------------------------------------------------------------------

@dataclasses.dataclass
class Scenario:
    key: str
    title: str
    rows: int
    fmt: str
    clients: int
    servers: tuple = ("scorepub", "mlflow")
    service: str = "bench"


SCENARIOS = [
    Scenario("1row-c1", "1 row, 1 client", 1, "json", 1),
    Scenario("1row-c8", "1 row, 8 clients", 1, "json", 8),
    Scenario("1k-c2", "1,000 rows, 2 clients", 1000, "json", 2),
    Scenario("100k-c2", "100,000 rows (JSON), 2 clients", 100_000, "json", 2),
    Scenario("100k-csv-c2", "100,000 rows (CSV), 2 clients", 100_000, "csv", 2),
    Scenario("percall-c1", "1 row, per-call isolation, 1 client", 1, "json", 1, ("scorepub",), "bench-per-call"),
]
PROMOTE = Scenario("promote-c8", "promote v2 during 1-row load, 8 clients", 1, "json", 8, ("scorepub",))


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.warmup_s = 1.0 if self.quick else 3.0
        self.duration_s = args.duration or (3.0 if self.quick else 20.0)
        self.after_promote_s = 3.0 if self.quick else 10.0
        self.work = Path(tempfile.mkdtemp(prefix="scorepub-bench-"))
        self.home = self.work / "home"
        self.servers: dict[str, Server] = {}
        self.keys: dict[str, str] = {}
        self.results: list[dict] = []
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.info: dict = {}
        self.single: dict = {}  # (server, service, rows, format) -> seconds for one request, from the preflight

    # -- set-up ------------------------------------------------------------------------------

    def scorepub_env(self) -> dict:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("SCOREPUB_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update({"SCOREPUB_HOME": str(self.home), "SCOREPUB_WEB_WORKERS": "2"})
        return env

    def scorepub(self, *args: str) -> dict:
        proc = run_cmd([sys.executable, "-m", "serving.cli", *args, "--json"], env=self.scorepub_env())
        return json.loads(proc.stdout)

    def experiment_copy(self, name: str, isolation: str = "warm", note: str = "") -> Path:
        folder = self.work / name
        shutil.copytree(EXPERIMENT, folder)
        schema = json.loads((folder / "schema.json").read_text())
        schema["isolation"] = isolation
        (folder / "schema.json").write_text(json.dumps(schema, indent=2))
        if note:
            (folder / "score.py").write_text((folder / "score.py").read_text() + f"\n# {note}\n")
        return folder

    def publish_scorepub(self) -> None:
        t0 = time.monotonic()
        for service, isolation in (("bench", "warm"), ("bench-per-call", "per-call")):
            out = self.scorepub("publish", str(self.experiment_copy(service, isolation)), "--name", service,
                                "-m", "benchmark")
            self.keys[service] = out["keys"]["primary"]
        self.info["publish_s"] = round(time.monotonic() - t0, 1)

    def start_scorepub(self) -> Server:
        port = free_port()
        server = Server("scorepub", [sys.executable, "-m", "serving.cli", "serve", "--port", str(port)],
                        self.scorepub_env(), REPO, self.work / "scorepub.log", port, "/readyz")
        server.start()
        return server

    def start_mlflow(self, python: Path) -> Server:
        model = self.work / "mlflow-model"
        env = {**os.environ, **MLFLOW_ENV, "PATH": f"{python.parent}:{os.environ.get('PATH', '')}"}
        env.pop("VIRTUAL_ENV", None)
        t0 = time.monotonic()
        out = run_cmd([str(python), "-W", "ignore", str(BENCH / "mlflow_model.py"), str(EXPERIMENT / "score.py"),
                       str(EXPERIMENT / "sample.json"), str(model)], env=env, cwd=self.work)
        self.info["mlflow_model"] = json.loads(out.stdout.strip().splitlines()[-1])
        self.info["mlflow_save_s"] = round(time.monotonic() - t0, 1)
        port = free_port()
        argv = [str(python.parent / "mlflow"), "models", "serve", "-m", str(model), "--env-manager", "local",
                "-h", HOST, "-p", str(port)]
        if self.args.mlflow_workers:
            argv += ["-w", str(self.args.mlflow_workers)]
        server = Server("mlflow", argv, env, self.work, self.work / "mlflow.log", port, "/ping")
        server.start()
        return server

    def request_for(self, server: str, payload: Payload, service: str = "bench"):
        path, content_type = payload.files[server]
        if server == "scorepub":
            return (f"/services/{service}/score", content_type, {"Authorization": f"Bearer {self.keys[service]}"},
                    path)
        return "/invocations", content_type, {}, path

    def preflight(self, payloads: dict) -> None:
        """Every payload once through each server: 200, every row back, the same numbers from both."""
        for (n, fmt), payload in payloads.items():
            answers = {}
            services = ["bench", "bench-per-call"] if n == 1 else ["bench"]
            for server in ("scorepub", "mlflow"):
                for service in (services if server == "scorepub" else ["-"]):
                    url, ctype, headers, path = self.request_for(server, payload, service)
                    t0 = time.perf_counter()
                    status, _, body = http_request(self.servers[server].port, "POST", url, path.read_bytes(),
                                                   {"Content-Type": ctype, **headers})
                    self.single[(server, service if server == "scorepub" else "-", n, fmt)] = time.perf_counter() - t0
                    if status != 200:
                        raise HarnessError(f"{server} {service} answered {status} to {n} rows ({fmt}): {body[:500]!r}")
                    rows = answer_rows(server, fmt, body)
                    if len(rows) != n:
                        raise HarnessError(f"{server} answered {len(rows)} rows for {n} ({fmt})")
                    answers[(server, service)] = rows
            reference = answers[("mlflow", "-")]
            for key, rows in answers.items():
                for a, b in zip(rows, reference):
                    if a[0] != b[0] or a[2] != b[2] or abs(a[1] - b[1]) > 1e-9:
                        raise HarnessError(f"{key} and MLflow disagree on {n} rows ({fmt}): {a} vs {b}")
        log("preflight: both servers give the same answers for every payload; one request took "
            + ", ".join(f"{k[0]}/{k[1]}/{k[2]}/{k[3]} {v * 1000:.0f} ms" for k, v in self.single.items()))

    # -- runs --------------------------------------------------------------------------------

    def measure(self, scenario: Scenario, server_name: str, payload: Payload, during=None) -> dict:
        server = self.servers[server_name]
        url, ctype, headers, path = self.request_for(server_name, payload, scenario.service)
        run = self.loadgen.run
        # slow requests (100k rows): run long enough for several requests per client, and skip the
        # warm-up, which would only leave requests in flight (the preflight already warmed the path)
        single = self.single.get((server_name, scenario.service if server_name == "scorepub" else "-",
                                  payload.rows, payload.fmt), 0.0)
        duration = self.duration_s
        if single > 0.05:
            factor, cap = (2, 20) if self.quick else (6, 120)
            duration = max(duration, min(cap, factor * single * scenario.clients))
        if during is None and self.warmup_s and single < 0.5:
            run(server.port, url, path, ctype, headers, scenario.clients, self.warmup_s, self.work)
        server.wait_idle(30 if self.quick else 90)
        self.wait_quiet()
        meter = CpuMeter(server.proc.pid)
        meter.start()
        busy0, kids0, t0 = machine_busy(), children_cpu(), time.monotonic()
        limit = duration if during is None else 300
        stats = run(server.port, url, path, ctype, headers, scenario.clients, limit, self.work, during=during)
        server.wait_idle(30 if self.quick else 90)
        cpu = meter.stop()
        # everything else the machine did meanwhile (other users' processes): a noise indicator
        other = (machine_busy() - busy0) - cpu - (children_cpu() - kids0)
        wall = time.monotonic() - t0
        requests = stats["requests"]
        seconds = stats["duration_us"] / 1e6
        errors = sum(stats[k] for k in ("connect", "read", "write", "status", "timeout"))
        # the generator stops with one request in flight per connection, which the server still serves
        # (its CPU is in ``cpu``): count them in the CPU per request, not in the throughput
        served = requests + scenario.clients
        result = {
            "scenario": scenario.key, "title": scenario.title, "server": server_name, "clients": scenario.clients,
            "rows": payload.rows, "format": payload.fmt, "requests": requests, "seconds": round(seconds, 2),
            "rps": requests / seconds if seconds else 0.0,
            "rows_s": requests * payload.rows / seconds if seconds else 0.0,
            "p50_ms": stats["p50_us"] / 1000, "p99_ms": stats["p99_us"] / 1000, "max_ms": stats["max_us"] / 1000,
            "cpu_ms_per_req": cpu * 1000 / served if requests else None, "cpu_s": round(cpu, 2),
            "loadgen_cpu_s": round(children_cpu() - kids0, 2), "other_load": round(max(0.0, other) / wall, 2),
            "errors": errors, "error_kinds": {k: stats[k] for k in ("connect", "read", "write", "status", "timeout")
                                              if stats[k]},
        }
        log(f"{scenario.key:<12} {server_name:<8} {result['rps']:9.1f} req/s  p50 {result['p50_ms']:8.2f} ms  "
            f"p99 {result['p99_ms']:8.2f} ms  cpu/req {result['cpu_ms_per_req'] or 0:8.2f} ms  errors {errors}")
        self.results.append(result)
        return result

    def wait_quiet(self) -> None:
        """With --wait-quiet S: wait (at most S seconds) for a second in which the machine is nearly
        idle (both servers are idle here), so that other users' work does not land in a run."""
        if not self.args.wait_quiet:
            return
        deadline = time.monotonic() + self.args.wait_quiet
        while time.monotonic() < deadline:
            busy = machine_busy()
            time.sleep(1.0)
            if machine_busy() - busy < 0.15:
                return
        log(f"the machine did not go quiet within {self.args.wait_quiet:g} s; measuring anyway")

    def promote_run(self, payload: Payload) -> None:
        v2 = self.experiment_copy("bench-v2", "warm", "version 2: the same function, a new artifact")
        events = {}

        def during():
            t0 = time.monotonic()
            time.sleep(self.warmup_s)
            out = self.scorepub("publish", str(v2), "--name", "bench", "-m", "benchmark v2")
            events["published"] = {"version": out["version"], "at_s": round(time.monotonic() - t0, 2)}
            out = self.scorepub("promote", "bench", str(out["version"]))
            events["promoted"] = {"live_version": out["live_version"], "at_s": round(time.monotonic() - t0, 2)}
            time.sleep(self.after_promote_s)

        try:
            result = self.measure(PROMOTE, "scorepub", payload, during=during)
        except HarnessError as exc:
            self.failures.append(f"promote scenario: {exc}")
            return
        url, ctype, headers, path = self.request_for("scorepub", payload)
        status, hdrs, _ = http_request(self.servers["scorepub"].port, "POST", url, path.read_bytes(),
                                       {"Content-Type": ctype, **headers})
        result["promote"] = {**events, "answered_by_after": hdrs.get("x-scorepub-version"), "status_after": status}
        if result["errors"]:
            self.failures.append(f"promote scenario: {result['errors']} failed requests "
                                 f"({result['error_kinds']}); zero are required")
        if status != 200 or hdrs.get("x-scorepub-version") != "2":
            self.failures.append(f"promote scenario: after the promote the service answered {status} "
                                 f"from version {hdrs.get('x-scorepub-version')}, not version 2")

    # -- the whole run -----------------------------------------------------------------------

    def run(self) -> int:
        started = time.monotonic()
        # the code under test, as it is when the servers start
        self.info["commit"] = (
            subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                           text=True).stdout.strip() or "?",
            subprocess.run(["git", "status", "--porcelain", "--", ".", ":!bench", ":!docs/benchmarks.md"],
                           cwd=REPO, capture_output=True, text=True).stdout.strip())
        try:
            self.loadgen = pick_loadgen(self.args.loadgen)
            log(f"load generator: {self.loadgen.version}")
            python, install_s = ensure_mlflow(self.args.mlflow_version)
            self.info["mlflow_install_s"] = round(install_s, 1) if install_s is not None else None
            self.info["mlflow_env"] = mlflow_versions(python)
            log("publishing the bench experiment to scorepub")
            self.publish_scorepub()
            self.servers["scorepub"] = self.start_scorepub()
            log("saving the MLflow model and starting mlflow models serve")
            self.servers["mlflow"] = self.start_mlflow(python)
            for server in self.servers.values():
                server.wait_ready(180)
                log(f"{server.name} ready on {HOST}:{server.port} after {server.start_s:.1f} s")
            _, _, ready = http_request(self.servers["scorepub"].port, "GET", "/readyz")
            self.info["scorepub_sandbox"] = json.loads(ready)["sandbox"]
            self.info["mlflow_workers"] = self.args.mlflow_workers or "default (1 uvicorn worker)"
            payloads = write_payloads(self.work, [(1, "json"), (1000, "json"), (100_000, "json"), (100_000, "csv")])
            self.preflight(payloads)
            only = set(self.args.only.split(",")) if self.args.only else None
            for scenario in SCENARIOS:
                if only is None or scenario.key in only:
                    for server in scenario.servers:
                        self.measure(scenario, server, payloads[(scenario.rows, scenario.fmt)])
            if only is None or PROMOTE.key in only:
                self.promote_run(payloads[(1, "json")])
        except HarnessError as exc:
            self.failures.append(str(exc))
        except KeyboardInterrupt:
            self.failures.append("interrupted")
        finally:
            for server in self.servers.values():
                try:
                    server.stop()
                except Exception as exc:  # noqa: BLE001 - stop the other one all the same
                    log(f"stopping {server.name}: {exc}")
            self.cleanup()
        self.info["total_s"] = round(time.monotonic() - started, 1)
        report = self.report()
        print(report)
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        (out / f"{stamp}.md").write_text(report)
        (out / f"{stamp}.json").write_text(json.dumps({"info": self.info, "results": self.results,
                                                       "failures": self.failures}, indent=2, default=str))
        log(f"wrote {out / (stamp + '.md')}")
        if self.failures:
            for failure in self.failures:
                log(f"FAILED: {failure}")
            return 1
        return 0

    def cleanup(self) -> None:
        try:
            sys.path.insert(0, str(REPO))
            from publisher.settings import default_run_dir

            shutil.rmtree(default_run_dir(self.home.absolute()), ignore_errors=True)
        except Exception:  # noqa: BLE001
            pass
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    # -- report ------------------------------------------------------------------------------

    def machine(self) -> list[str]:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), platform.processor() or "?")
        mem_kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal"))
        try:
            osname = next(ln.split("=", 1)[1].strip('"') for ln in Path("/etc/os-release").read_text().splitlines()
                          if ln.startswith("PRETTY_NAME="))
        except (OSError, StopIteration):
            osname = platform.platform()

        def ver(name):
            try:
                return importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                return "?"

        commit, dirty = self.info.get("commit", ("?", ""))
        ml = self.info.get("mlflow_env", {})
        installed = self.info.get("mlflow_install_s")
        venv = "cached" if installed is None else f"installed in {installed} s"
        sandbox = self.info.get("scorepub_sandbox") or {}
        active = [n for n, s in (sandbox.get("layers") or {}).items() if s.get("active")]
        return [
            f"- machine: {os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {cpu}; "
            f"{mem_kb / 1024 / 1024:.1f} GiB memory; {osname}, Linux {platform.release()}",
            f"- Python {platform.python_version()} ({platform.python_implementation()}, {sys.prefix != sys.base_prefix and 'virtualenv' or 'system'})",
            f"- scorepub {ver('scorepub')} at {commit}{' + local changes' if dirty else ''}: "
            f"gunicorn {ver('gunicorn')} "
            f"(gthread, SCOREPUB_WEB_WORKERS=2, 8 threads), pool size 2, sandbox {sandbox.get('mode', '?')} "
            f"({', '.join(active) or '?'}); Flask {ver('flask')}, pandas {ver('pandas')}, numpy {ver('numpy')}, "
            f"orjson {ver('orjson')}",
            f"- MLflow {ml.get('mlflow', '?')} (`mlflow models serve --env-manager local`, "
            f"uvicorn {ml.get('uvicorn', '?')}, "
            f"workers: {self.info.get('mlflow_workers')}), FastAPI {ml.get('fastapi', '?')}, pandas "
            f"{ml.get('pandas', '?')}, numpy {ml.get('numpy', '?')}; model: pyfunc PythonModel from code, "
            "signature inferred from sample.json (MLflow enforces it)",
            f"- load generator: {self.loadgen.version if hasattr(self, 'loadgen') else '?'}, keep-alive, "
            f"closed loop, 127.0.0.1; {'quick' if self.quick else 'full'} mode: {self.warmup_s:g} s warm-up + "
            f"{self.duration_s:g} s per run",
            f"- set-up: MLflow venv {venv}; publish x2 {self.info.get('publish_s', '?')} s; MLflow model saved in "
            f"{self.info.get('mlflow_save_s', '?')} s; ready after: scorepub {self._start('scorepub')}, "
            f"MLflow {self._start('mlflow')}; whole run {self.info.get('total_s', '?')} s",
        ]

    def _start(self, name):
        s = self.servers.get(name)
        return f"{s.start_s:.1f} s" if s is not None and s.start_s is not None else "?"

    def report(self) -> str:
        when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        lines = [f"# scorepub vs MLflow, {when}", ""] + self.machine() + [""]
        lines += ["| scenario | server | requests | req/s | rows/s | p50 ms | p99 ms | CPU ms/req | errors "
                  "| other load |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in self.results:
            cpu = f"{r['cpu_ms_per_req']:.2f}" if r["cpu_ms_per_req"] is not None else "-"
            lines.append(f"| {r['title']} | {r['server']} | {r['requests']} | {r['rps']:,.1f} | {r['rows_s']:,.0f} | "
                         f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {cpu} | {r['errors']} | {r['other_load']:.2f} |")
        by = {(r["scenario"], r["server"]): r for r in self.results}
        ratio_rows = []
        for s in SCENARIOS:
            a, b = by.get((s.key, "scorepub")), by.get((s.key, "mlflow"))
            if a and b:
                def q(x, y):
                    return f"{x / y:.2f}" if x and y else "-"
                ratio_rows.append(f"| {s.title} | {q(a['rps'], b['rps'])} | {q(a['p50_ms'], b['p50_ms'])} | "
                                  f"{q(a['p99_ms'], b['p99_ms'])} | {q(a['cpu_ms_per_req'], b['cpu_ms_per_req'])} |")
        if ratio_rows:
            lines += ["", "Ratios scorepub / MLflow (req/s and rows/s: higher is better for scorepub; "
                          "latency and CPU: lower is better):", "",
                      "| scenario | req/s and rows/s | p50 | p99 | CPU per request |",
                      "| --- | ---: | ---: | ---: | ---: |"] + ratio_rows
        lines += ["", "Targets of issue 7 (reported, not asserted):", "", "| target | measured | |",
                  "| --- | --- | --- |"]
        lines += self.targets()
        promote = next((r for r in self.results if r["scenario"] == PROMOTE.key), None)
        if promote and promote.get("promote"):
            p = promote["promote"]
            lines += ["", f"Promote: v2 published at {p.get('published', {}).get('at_s', '?')} s and promoted at "
                          f"{p.get('promoted', {}).get('at_s', '?')} s into the load; {promote['requests']} requests, "
                          f"{promote['errors']} failed; afterwards answered by version {p.get('answered_by_after')}."]
        lines += ["", "Notes: CPU is user+sys time of each server's whole process tree (gunicorn master and web "
                      "processes, sandbox templates and workers; mlflow CLI and uvicorn) from /proc, from the start "
                      "of a run until the server is idle again, divided by the requests it served. The load "
                      "generator shares the 2 cores with the server. *Other load*: cores' worth of CPU the rest of the "
                      "machine used during the run (neither server nor load generator); about 0.1 is the quiet "
                      "baseline here, above ~0.2 the figures of that run are disturbed by other work on the machine. "
                      "MLflow answers JSON records whatever the request format; scorepub answers in the request's "
                      "format (columns JSON or CSV)."]
        if self.failures:
            lines += ["", "**Failures:**", ""] + [f"- {f}" for f in self.failures]
        return "\n".join(lines) + "\n"

    def targets(self) -> list[str]:
        by = {(r["scenario"], r["server"]): r for r in self.results}
        out = []

        def verdict(ok):
            return "met" if ok else "**not met**"

        a, b = by.get(("1row-c8", "scorepub")), by.get(("1row-c8", "mlflow"))
        if a and b and b["rps"]:
            ratio = a["rps"] / b["rps"]
            out.append(f"| 1 row, 8 clients: >= 3x MLflow req/s | {ratio:.2f}x | {verdict(ratio >= 3)} |")
            out.append(f"| 1 row, 8 clients: p99 <= 10 ms | {a['p99_ms']:.2f} ms | {verdict(a['p99_ms'] <= 10)} |")
        for key, label in (("100k-c2", "100,000 rows (JSON)"), ("100k-csv-c2", "100,000 rows (CSV)")):
            a, b = by.get((key, "scorepub")), by.get((key, "mlflow"))
            if a and b and b["rows_s"]:
                ratio = a["rows_s"] / b["rows_s"]
                out.append(f"| {label}: >= 5x MLflow rows/s | {ratio:.2f}x | {verdict(ratio >= 5)} |")
        a, b = by.get(("percall-c1", "scorepub")), by.get(("1row-c1", "scorepub"))
        if a and b:
            extra = a["p50_ms"] - b["p50_ms"]
            out.append(f"| per-call isolation adds <= 5 ms to a 1-row call (p50 vs warm, 1 client) | "
                       f"+{extra:.2f} ms | {verdict(extra <= 5)} |")
        p = by.get((PROMOTE.key, "scorepub"))
        if p:
            out.append(f"| promote during load: zero failed requests | {p['errors']} failed of {p['requests']} | "
                       f"{verdict(p['errors'] == 0)} |")
        return out


def main() -> None:
    p = argparse.ArgumentParser(description="scorepub vs MLflow, side by side (issue 7).")
    p.add_argument("--quick", action="store_true", help="short runs (a smoke check: under two minutes once cached)")
    p.add_argument("--out", default=str(BENCH / "results"), help="where to write <timestamp>.md and .json")
    p.add_argument("--duration", type=float, default=None, help="seconds per measured run (default 20; quick 3)")
    p.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    p.add_argument("--mlflow-version", default=MLFLOW_VERSION)
    p.add_argument("--mlflow-workers", type=int, default=None, help="mlflow models serve -w (default: its own)")
    p.add_argument("--only", default=None, metavar="KEYS",
                   help="comma-separated scenario keys to run (" + ", ".join(s.key for s in SCENARIOS + [PROMOTE])
                   + "); default: all")
    p.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                   help="before each run, wait up to S seconds for the machine to be idle (default: don't)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, bodies, model)")
    args = p.parse_args()
    sys.exit(Bench(args).run())


if __name__ == "__main__":
    main()
