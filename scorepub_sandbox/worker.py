"""What runs inside a worker: load the script once, then run calls as they come.

The template (``template.py``) loads the script with :func:`load_script` and forks workers;
each worker runs :meth:`Worker.serve` on its own socket: call -> result, until it closes.
"""
from __future__ import annotations

import contextlib
import linecache
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
import types
from pathlib import Path

from .classic_plots import close_figures
from .tracebacks import ScriptFiles, one_line, clean_traceback

LOG_NAME = "output.log"
MAX_PLOT_BYTES = 32 * 1024 * 1024


def load_script(score_py: bytes, n_ports: int):
    """Run score.py's module-level code once; return (module, azureml_main)."""
    source = score_py.decode("utf-8", "replace")
    linecache.cache["score.py"] = (len(source), None, source.splitlines(True), "score.py")
    module = types.ModuleType("score")
    module.__file__ = "score.py"
    module.azureml_parameters = {}
    sys.modules["score"] = module
    exec(compile(score_py, "score.py", "exec"), module.__dict__)
    fn = getattr(module, "azureml_main", None)
    if not callable(fn):
        raise TypeError("score.py defines no callable azureml_main")
    _check_arity(fn, n_ports)
    return module, fn


class Worker:
    def __init__(self, sock: socket.socket, workdir: Path, module, fn, log_cap: int, max_output: int,
                 files: ScriptFiles, bundle_dir: Path, per_call: bool = False):
        self.sock = sock
        self.per_call = per_call  # a fresh worker per call: nothing of an earlier call may remain
        self.workdir = workdir
        self.module, self.fn = module, fn
        self.log_cap = log_cap
        self.max_output = max_output
        self.files = files  # the script's own files, for tracebacks
        self.bundle_dir = bundle_dir
        self.calls = 0

    # -- calls ------------------------------------------------------------------------

    def run_call(self, header: dict, blobs: list) -> tuple[dict, list]:
        from . import messages
        from .messages import ErrorKind
        from .output import ReturnValueError, translate

        self.calls += 1
        started = time.perf_counter()
        if self.per_call:
            from .sandbox import remove_ipc_objects

            remove_ipc_objects()  # SysV objects an earlier call's worker left in the template's namespace
        frames = [messages.decode_table(t, blobs).to_frame() for t in header["inputs"]]
        self.module.azureml_parameters = dict(header.get("parameters") or {})
        try:
            calldir = Path(tempfile.mkdtemp(prefix=f"{self.calls}-", dir=self.workdir))
            # as in classic: the working directory holds the (read-only) Script Bundle
            os.symlink(self.bundle_dir, calldir / "Script Bundle", target_is_directory=True)
            os.chdir(calldir)
        except OSError as exc:  # the script broke its own worker's folder in an earlier call
            return {"op": "result", "id": header["id"], "log": "",
                    "error": {"kind": ErrorKind.SCRIPT, "message": f"the call's working directory could not be made: {exc}"}}, []
        reply: dict = {"op": "result", "id": header["id"]}
        out_blobs: list = []
        try:
            with _capture(self.workdir / LOG_NAME):
                t0 = time.perf_counter()
                try:
                    returned = self.fn(*frames)
                    script_ms = (time.perf_counter() - t0) * 1000
                    table, notes = translate(returned)
                except ReturnValueError as exc:
                    reply["error"] = {"kind": ErrorKind.RETURN, "message": str(exc)}
                except MemoryError:
                    reply["error"] = {"kind": ErrorKind.MEMORY, "message": "the script ran out of memory"}
                except BaseException as exc:  # noqa: BLE001 - anything the script raises is its result
                    reply["error"] = {"kind": ErrorKind.SCRIPT, "message": one_line(exc, self.files),
                                      "traceback": clean_traceback(exc, self.files)}
                finally:
                    close_figures()  # the next call's plots show that call's drawing only
            reply["log"], reply["log_truncated"] = _read_log(self.workdir / LOG_NAME, self.log_cap)
            if "error" not in reply:
                try:
                    reply["output"] = messages.encode_table(table, out_blobs)
                    reply["notes"] = notes
                    reply["plots"] = _collect_plots(calldir, out_blobs)
                except MemoryError:
                    out_blobs = []
                    reply = {"op": "result", "id": header["id"], "log": reply["log"],
                             "error": {"kind": ErrorKind.MEMORY, "message": "out of memory while encoding the output"}}
                except Exception as exc:  # noqa: BLE001 - a value the wire cannot carry is the script's
                    out_blobs = []
                    reply = {"op": "result", "id": header["id"], "log": reply["log"],
                             "error": {"kind": ErrorKind.RETURN, "message": f"the output cannot be sent: "
                                                                    f"{type(exc).__name__}: {exc}"[:2000]}}
                size = sum(len(b) for b in out_blobs)
                if size > self.max_output:
                    out_blobs = []
                    reply.pop("output"), reply.pop("plots")
                    reply["error"] = {"kind": ErrorKind.OUTPUT_TOO_LARGE,
                                      "message": f"the output is {size} bytes; the limit is {self.max_output}"}
            usage = resource.getrusage(resource.RUSAGE_SELF)
            reply["timing"] = {"worker_ms": round((time.perf_counter() - started) * 1000, 3),
                               "cpu_s": round(usage.ru_utime + usage.ru_stime, 3)}
            if "error" not in reply:
                reply["timing"]["script_ms"] = round(script_ms, 3)
        finally:
            os.chdir(self.workdir)
            shutil.rmtree(calldir, ignore_errors=True)
        return reply, out_blobs

    def serve(self) -> None:
        from . import messages

        while True:
            try:
                header, blobs = messages.recv(self.sock, max_bytes=1 << 40)
            except messages.ProtocolError:
                return  # the parent closed the channel: exit quietly
            if header.get("op") != "call":
                return
            reply, out = self.run_call(header, blobs)
            messages.send(self.sock, messages.text_safe(reply), out)


def _check_arity(fn, n_ports: int) -> None:
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*([None] * n_ports))
    except TypeError as exc:
        raise TypeError(f"azureml_main cannot be called with {n_ports} positional argument(s): {exc}") from None


@contextlib.contextmanager
def _capture(path: Path):
    """Send fds 1 and 2 (Python's and C's writes alike) to ``path`` for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def _read_log(path: Path, cap: int) -> tuple[str, bool]:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            data = f.read(cap)
    except FileNotFoundError:
        return "", False
    text = data.decode("utf-8", "replace")
    if size > cap:
        text += f"\n[output log truncated: {size} bytes written, the first {cap} kept]\n"
        return text, True
    return text, False


def _collect_plots(calldir: Path, blobs: list) -> list:
    plots, total = [], 0
    for path in sorted(calldir.glob("*.png")):
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        total += len(data)
        if total > MAX_PLOT_BYTES:
            break
        plots.append({"name": path.name, "blob": len(blobs)})
        blobs.append(data)
    return plots
