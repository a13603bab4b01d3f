"""The fork server: templates forked from one process that has the runtime's imports loaded.

A template started with ``exec`` imports NumPy, pandas and matplotlib afresh: ~75 MiB of
private memory in every service. The pool host instead starts one fork server
(``launch.command(python, "forkserver", FD)``: clean environment, no settings, no artifacts),
which imports them once, freezes its heap out of the garbage collector's reach (``gc.freeze``:
a collection in a child would otherwise write to, and so copy, every shared page), and then
forks one child per template. The child becomes what a template started on its own
(``launch.command(python, "template", FD)``) is: a new session, stdin on /dev/null, the template's folder and environment, then the
zygote (``template.serve_socket``), which enters the namespaces and forks the template. The
pages of the imports stay shared, copy-on-write, by every template and worker of the host.

It stays single-threaded (forking is only safe so), and dies with the pool host
(PR_SET_PDEATHSIG); each zygote dies with it in turn.

Messages (JSON frames, ``messages.py``) on its socketpair with the pool host:
spawn(id, env, cwd) + the template's socket (SCM_RIGHTS) -> spawned(id, pid) | failed(id);
and, whenever a child ends, exited(pid, exit) unasked.
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # noqa: E402 - before NumPy: no BLAS threads

import gc  # noqa: E402
import importlib  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402

import orjson  # noqa: E402

from . import messages, sandbox  # noqa: E402
from .template import describe_status, reap_children  # noqa: E402


def preload() -> None:
    """What every template imports in ``Template.prepare``, loaded once here."""
    from . import classic_plots

    classic_plots.force_agg()  # and the font cache (where matplotlib is installed)
    for name in ("numpy", "pandas"):
        importlib.import_module(name)
    for name in ("artifact", "bundle", "classic_compat", "classic_paths", "output", "py2_runtime", "table",
                 "template", "tracebacks", "worker"):
        importlib.import_module(f"{__package__}.{name}")
    gc.collect()
    gc.freeze()


def _child(fd: int, env: dict, cwd: str) -> int:
    """In the forked child: become a freshly started template process, then its zygote."""
    import tempfile

    from . import template

    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()  # and so no controlling terminal
    # nothing of the server's: not its terminal (a script could read what the operator types,
    # or turn echo off), not its log (a script's writes would land there); a call's output goes
    # to its own file (worker._capture), load failures come back over the socket
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(null, std)
    os.close(null)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None  # computed again from TMPDIR
    return template.serve_socket(socket.socket(fileno=fd))


def serve(sock: socket.socket) -> None:
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so SIGCHLD reaches the wakeup fd
    while True:
        try:
            ready, _, _ = select.select([sock, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
            for pid, status in reap_children():
                messages.send(sock, {"op": "exited", "pid": pid, "exit": describe_status(status)})
        if sock not in ready:
            continue
        try:
            header, _ = messages.recv(sock, max_bytes=0)
            if header.get("op") != "spawn":
                return
            _, fds, _, _ = socket.recv_fds(sock, 1, 1)
        except (OSError, messages.ProtocolError):
            return  # the pool host is gone: so are we (and, by PDEATHSIG, our children)
        if len(fds) != 1:
            messages.send(sock, {"op": "failed", "id": header.get("id"), "message": "no socket came with spawn"})
            continue
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(fds[0])
            messages.send(sock, {"op": "failed", "id": header.get("id"), "message": f"fork failed: {exc}"})
            continue
        if pid == 0:
            code = 70
            try:
                sock.close()
                os.close(wake_r)
                os.close(wake_w)
                code = _child(fds[0], dict(header["env"]), str(header["cwd"]))
            finally:
                os._exit(code)
        os.close(fds[0])
        messages.send(sock, {"op": "spawned", "id": header.get("id"), "pid": pid})


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--modules":  # what a fork server holds after its preload (for tests)
        preload()
        sys.stdout.write(orjson.dumps(sorted(sys.modules)).decode() + "\n")
        return 0
    sock = socket.socket(fileno=int(argv[0]))
    sandbox.close_fds({sock.fileno()})
    sandbox.die_with_parent()
    preload()
    messages.send(sock, {"op": "ready", "pid": os.getpid()})
    serve(sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
