"""The template process of one artifact: it loads everything once, then forks workers on demand.

Forked by the fork server (``forkserver.py``, which has the imports below loaded already) and
handed only its control socket; ``launch.command(python, "template", FD)`` starts one the same way.
1. As the **zygote** (single-threaded, nothing imported yet) it enters new network and PID
   namespaces (and a user namespace when not root) and forks the template, PID 1 inside them.
2. The **template** imports pandas, numpy and matplotlib (Agg), verifies the artifact, unpacks the
   Script Bundle, drops to its sandbox uid, sets rlimits, Landlock and seccomp, then imports
   score.py (so module-level code runs sandboxed) and reports ``ready`` with its layers.
3. On ``fork`` it forks a **worker**, which narrows Landlock to its own directory and adds the
   worker seccomp filter (no processes, no signals to others), then serves calls; the parent's
   end of the worker's socketpair goes to the pool (and from it to the web process leasing the worker) over SCM_RIGHTS.
Control messages (JSON frames, ``messages.py``): init, fork -> forked (+fd), kill -> killed (at
once), exit -> exited (kills, then waits for the worker to be reaped), and ready/load_failed once.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import resource
import signal
import socket
import sys
import time
from pathlib import Path

# The zygote must stay single-threaded until it has entered its namespaces: keep imports
# that start threads (numpy's BLAS) for the template.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import orjson  # noqa: E402

from . import messages, sandbox  # noqa: E402


def describe_status(status: int) -> dict:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return {"signal": name}
    return {"code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1}


def reap_children():
    """Reap every child that has ended, without waiting: (pid, wait status) for each."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


class Template:
    def __init__(self, sock: socket.socket, init: dict, artifact_bytes: bytes):
        self.sock = sock
        self.init = init
        self.artifact_bytes = artifact_bytes
        self.pool_dir = Path(init["pool_dir"])
        self.template_dir = self.pool_dir / "template"
        self.workers_dir = self.pool_dir / "workers"
        self.strict = init["sandbox"] == "strict"
        self.layers: dict[str, dict] = {}
        self.exits: dict[int, dict] = {}  # reaped, not yet asked for
        self.children: set[int] = set()
        self.reaped: list[int] = []  # whose folders are still to remove
        self.per_call = False  # set from the schema in prepare()

    # -- set-up ----------------------------------------------------------------------------

    def layer(self, name: str, fn, *args):
        """Apply one layer; in strict mode a failure stops everything, otherwise it is reported."""
        try:
            result = fn(*args)
            self.layers[name] = {"active": True}
            return result
        except sandbox.SandboxUnavailable as exc:
            self.layers[name] = {"active": False, "detail": str(exc)}
            if self.strict:
                raise

    def prepare(self) -> None:
        """Everything trusted, before the sandbox: imports, artifact, bundle, classic behaviour."""
        from . import classic_plots

        classic_plots.force_agg()  # also builds the font cache now, while it may write
        for name in ("numpy", "pandas", f"{__package__}.output", f"{__package__}.worker"):
            importlib.import_module(name)  # loaded before any fork (the fork server has them already)
        from . import artifact, bundle, classic_paths, tracebacks

        art = artifact.load(self.artifact_bytes, self.init["digest"])  # refuses a mismatch
        del self.artifact_bytes
        self.score_py = art.score_py
        document = art.schema_document
        self.per_call = document.get("isolation") == "per-call"
        self.rehearsal = _empty_inputs(document)
        if art.conversion is not None:
            import builtins

            from .py2_runtime import DIV_NAME, IDIV_NAME, py2_div, py2_idiv

            setattr(builtins, DIV_NAME, py2_div)  # what converted Python 2 code calls for "/"
            setattr(builtins, IDIV_NAME, py2_idiv)  # and for "/="
        if document.get("compat", "classic") == "classic":
            from . import classic_compat

            classic_compat.install()
        classic_paths.install()
        bundle_dir = self.template_dir / "Script Bundle"
        if art.bundle is not None:
            bundle.unpack(art.bundle, bundle_dir)
        else:
            bundle_dir.mkdir(parents=True, exist_ok=True)
        _read_only(bundle_dir)
        os.environ["SCRIPT_BUNDLE"] = str(bundle_dir)
        sys.path.insert(0, str(bundle_dir))
        self.bundle_dir = bundle_dir
        self.files = tracebacks.from_artifact(art, [self.template_dir])

    def confine(self) -> None:
        """The template's own layers (its workers inherit them and add their own)."""
        sb = self.init
        if sb["sandbox"] == "off":
            self.layers.update({n: {"active": False, "detail": "SCOREPUB_SANDBOX=off"}
                                for n in ("uid", "landlock", "seccomp")})
        else:
            if os.getuid() == 0:
                self.layer("uid", self._drop_root, sb["uid"])
            else:
                self.layer("uid", sandbox.drop_capabilities)
        memory = sb["memory_mb"] * 1024 * 1024 + sandbox.address_space_in_use()
        self.layer("rlimits", sandbox.set_rlimits, memory, None, sb["max_processes"], 256,
                   sb["max_file_bytes"])
        if sb["sandbox"] != "off":
            self.read_paths = sandbox.python_read_paths() + [str(self.template_dir)]  # reused by each worker
            self.layer("landlock", sandbox.landlock_restrict, self.read_paths, [str(self.workers_dir)])
            self.layer("seccomp", sandbox.seccomp_template)

    @staticmethod
    def _drop_root(uid: int) -> None:
        sandbox.drop_privileges(uid, uid)
        sandbox.check_python_readable(uid)

    # -- serving the pool ---------------------------------------------------------------------

    def load(self) -> None:
        from .worker import load_script

        os.chdir(self.template_dir)
        self.module, self.fn = load_script(self.score_py, int(self.init["n_ports"]))

    def _reap(self, *_):
        for pid, status in reap_children():
            if pid in self.children:
                self.children.discard(pid)
                self.exits[pid] = describe_status(status)
                self.reaped.append(pid)

    def serve(self) -> None:
        """Answer control messages in order. A kill is answered at once (the worker is reaped
        when SIGCHLD comes), so forks never queue behind a dying worker; only ``exit``, asked
        after a crash for its cause, waits (briefly) for the worker to be reaped."""
        signal.signal(signal.SIGCHLD, self._reap)
        while True:
            try:
                header, _ = messages.recv(self.sock, max_bytes=0)
            except (OSError, messages.ProtocolError):
                return  # the pool host is gone: the namespace goes with us
            op = header.get("op")
            pid = int(header.get("pid", 0) or 0)
            if op == "fork":
                self.fork_worker()
            elif op == "kill":
                self._kill(pid)
                messages.send(self.sock, {"op": "killed", "pid": pid})
            elif op == "exit":
                self._kill(pid)
                messages.send(self.sock, {"op": "exited", "pid": pid, "exit": self._wait_exit(pid)})
            else:
                return
            self._remove_reaped()

    def _kill(self, pid: int) -> None:
        if pid in self.children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass

    def _wait_exit(self, pid: int) -> dict | None:
        deadline = time.monotonic() + 2
        while pid in self.children and time.monotonic() < deadline:
            self._reap()
            if pid in self.children:
                time.sleep(0.002)
        return self.exits.pop(pid, None)

    def _remove_reaped(self) -> None:
        import shutil

        while self.reaped:
            shutil.rmtree(self.workers_dir / str(self.reaped.pop()), ignore_errors=True)
        for pid in list(self.exits)[:-256]:  # killed workers nobody asks about
            del self.exits[pid]

    def fork_worker(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                self.sock.close()
                mine.close()
                code = self.run_worker(theirs)
            except BaseException:  # noqa: BLE001 - a worker never returns into the template's loop
                code = 70
            finally:
                os._exit(code)
        try:
            os.setpgid(pid, pid)  # as the child does: a kill right after the fork must reach its group
        except OSError:
            pass  # it has done so already (or died)
        theirs.close()
        self.children.add(pid)
        messages.send(self.sock, {"op": "forked", "pid": pid})
        socket.send_fds(self.sock, [b"F"], [mine.fileno()])
        mine.close()

    def run_worker(self, sock: socket.socket) -> int:
        from .worker import Worker

        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        pid = os.getpid()
        os.setpgid(0, 0)
        sandbox.die_with_parent()
        workdir = self.workers_dir / str(pid)
        workdir.mkdir(mode=0o700)
        for name in ("HOME", "TMPDIR"):
            os.environ[name] = str(workdir)
        cpu = int(self.init["cpu_limit_s"])
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))  # the pool recycles a worker at half of it
        if self.init["sandbox"] != "off":
            sandbox.landlock_restrict(self.read_paths, [str(workdir)])
            sandbox.seccomp_worker(pid)
        os.chdir(workdir)
        self.rehearse()
        files = dataclasses.replace(self.files, roots=[self.template_dir, workdir])
        Worker(sock, workdir, self.module, self.fn, int(self.init["log_cap"]), int(self.init["max_output_bytes"]),
               files, self.bundle_dir, self.per_call).serve()
        return 0


    def rehearse(self) -> None:
        """Run the runtime's own path once on empty inputs, before any call: the pages it touches
        are copied (copy-on-write after the fork) now, not during the first caller's request."""
        from . import messages
        from .output import translate

        try:
            for table in self.rehearsal:
                blobs: list = []
                frame = messages.decode_table(messages.encode_table(table, blobs), blobs).to_frame()
                messages.encode_table(translate(frame)[0], [])
        except Exception:  # noqa: BLE001 - only a warm-up
            pass


def _read_only(folder: Path) -> None:
    """Make the Script Bundle read-only. With the sandbox on, Landlock (and, as root, the uid
    drop) enforce it; with SCOREPUB_SANDBOX=off as a non-root user the owner could undo it."""
    for root, dirs, names in os.walk(folder):
        for name in names:
            os.chmod(os.path.join(root, name), 0o444)
        os.chmod(root, 0o555)


def _empty_inputs(schema_document: dict) -> list:
    """One row of plain values per declared port, read from the artifact's (already validated)
    schema document: no schema library is needed in the sandbox."""
    import numpy as np

    from .table import Column, Table

    sample = {"string": ("", object), "integer": (0, np.int64), "double": (0.0, np.float64),
              "boolean": (False, bool), "datetime": (946684800 * 10**9, np.int64)}  # 2000-01-01T00:00:00
    tables = []
    inputs = schema_document.get("inputs") or {}
    for port in ("input1", "input2"):
        if port not in inputs:
            continue
        columns = []
        for c in inputs[port]["columns"]:
            value, dtype = sample[c["type"]]
            data = np.empty(1, dtype=dtype)
            data[0] = value
            columns.append(Column(c["name"], c["type"], data, nullable=bool(c.get("nullable", False))))
        tables.append(Table(columns, 1))
    return tables


def _zygote(sock: socket.socket, init: dict) -> None:
    """Enter the namespaces and fork the template (PID 1 inside them); wait for it, then exit."""
    as_root = os.getuid() == 0
    layers = {}
    try:
        sandbox.close_fds({sock.fileno()})
        layers["fds"] = {"active": True}
        sandbox.die_with_parent()
        layers["pdeathsig"] = {"active": True}
        sandbox.no_new_privs()
        layers["no_new_privs"] = {"active": True}
        if init["sandbox"] == "off":
            layers["namespaces"] = {"active": False, "detail": "SCOREPUB_SANDBOX=off"}
            layers["disk"] = {"active": False, "detail": "SCOREPUB_SANDBOX=off"}
        else:
            sandbox.enter_namespaces(as_root)
            layers["namespaces"] = {"active": True}
            sandbox.private_disk(str(Path(init["pool_dir"]) / "workers"), init["disk_mb"],
                                 init["uid"] if as_root else None)
            layers["disk"] = {"active": True}
    except sandbox.SandboxUnavailable as exc:
        failed = next(n for n in sandbox.LAYERS if n not in layers)
        layers[failed] = {"active": False, "detail": str(exc)}
        messages.send(sock, {"op": "load_failed", "kind": messages.ErrorKind.SANDBOX, "layers": layers,
                             "message": f"sandbox layer '{failed}' is unavailable: {exc}"})
        os._exit(4)
    pid = os.fork()
    if pid == 0:
        os._exit(_template_main(sock, init, layers))
    sock.close()
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)
        except InterruptedError:
            continue


def _template_main(sock: socket.socket, init: dict, layers: dict) -> int:
    from .tracebacks import clean_traceback, one_line
    from .worker import LOG_NAME, _capture, _read_log

    t0 = time.perf_counter()
    template = Template(sock, init, init.pop("_artifact"))
    template.layers.update(layers)
    try:
        sandbox.die_with_parent()
        template.template_dir.mkdir(parents=True, exist_ok=True)
        template.prepare()
        template.confine()
        sandbox.die_with_parent()  # the kernel clears it when the uid changes: set it again
    except sandbox.SandboxUnavailable as exc:
        messages.send(sock, {"op": "load_failed", "kind": messages.ErrorKind.SANDBOX, "layers": template.layers,
                             "message": f"the sandbox could not be set up: {exc}"})
        return 4
    except Exception as exc:  # noqa: BLE001 - a damaged artifact, or a fault of ours: said, not a bare exit
        messages.send(sock, {"op": "load_failed", "kind": messages.ErrorKind.PREPARE, "layers": template.layers,
                             "message": f"the service could not be prepared: {type(exc).__name__}: {exc}"[:2000]})
        return 5
    log_path = template.workers_dir / LOG_NAME
    try:
        with _capture(log_path):
            template.load()
    except BaseException as exc:  # noqa: BLE001 - report any load failure to the pool
        log, _ = _read_log(log_path, int(init["log_cap"]))
        messages.send(sock, {"op": "load_failed", "kind": messages.ErrorKind.SCRIPT, "layers": template.layers,
                             "message": one_line(exc, template.files),
                             "traceback": clean_traceback(exc, template.files), "log": log})
        return 3
    log, _ = _read_log(log_path, int(init["log_cap"]))
    import gc

    gc.collect()
    gc.freeze()  # a collection in a worker must not write to (and so copy) the template's pages
    messages.send(sock, {"op": "ready", "load_ms": round((time.perf_counter() - t0) * 1000, 1),
                         "log": log, "layers": template.layers})
    template.serve()
    return 0


def probe(sandbox_mode: str) -> dict:
    """Which layers this host provides, checked in a throwaway child (for start-up and /readyz)."""
    import shutil
    import tempfile

    disk = tempfile.mkdtemp(prefix="scorepub-probe-")  # a tmpfs goes over it, in the child's namespace
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        report = {}
        steps = [("fds", lambda: sandbox.close_fds({write})),
                 ("rlimits", lambda: sandbox.set_rlimits(None, None, 4096, 1024, 1 << 30)),
                 ("no_new_privs", sandbox.no_new_privs), ("pdeathsig", sandbox.die_with_parent),
                 ("namespaces", lambda: sandbox.enter_namespaces(os.getuid() == 0)),
                 ("disk", lambda: sandbox.private_disk(disk, 1, None)),
                 ("uid", (lambda: sandbox.drop_privileges(65534, 65534)) if os.getuid() == 0
                  else sandbox.drop_capabilities),
                 ("landlock", lambda: sandbox.landlock_restrict(sandbox.python_read_paths(), [])),
                 ("seccomp", sandbox.seccomp_template)]
        for name, step in steps:
            try:
                step()
                report[name] = {"active": True}
            except sandbox.SandboxUnavailable as exc:
                report[name] = {"active": False, "detail": str(exc)}
        os.write(write, orjson.dumps(report))
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    shutil.rmtree(disk, ignore_errors=True)
    report = orjson.loads(b"".join(chunks))
    report["landlock_abi"] = sandbox.landlock_abi()
    if sandbox_mode == "off":
        for name in ("namespaces", "uid", "landlock", "seccomp"):
            report[name] = {"active": False, "detail": "SCOREPUB_SANDBOX=off"}
    return report


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--probe":
        sys.stdout.write(orjson.dumps(probe(argv[1] if len(argv) > 1 else "strict")).decode() + "\n")
        return 0
    return serve_socket(socket.socket(fileno=int(argv[0])))


def serve_socket(sock: socket.socket) -> int:
    """Read the init message (and the artifact) from the pool, then become the zygote."""
    try:
        header, blobs = messages.recv(sock, max_bytes=1 << 40)
    except (OSError, messages.ProtocolError):
        return 0
    header["_artifact"] = bytes(blobs[0])
    _zygote(sock, header)
    return 0


if __name__ == "__main__":
    sys.exit(main())
