"""The pool's side of the fork server (``forkserver.py``): start templates, learn when they end.

The fork server is started from one long-lived thread: it asks to be killed when its parent
*thread* exits (PR_SET_PDEATHSIG), so it must not be started from a short-lived one. If it
dies, every template it forked dies too (their own PDEATHSIG), and the next start makes a new
fork server.
"""
from __future__ import annotations

import concurrent.futures
import itertools
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from scorepub_sandbox import launch, messages

log = logging.getLogger("scorepub.runtime")
START_TIMEOUT_S = 120


class ForkedProcess:
    """A template's zygote, as the pool sees it: a pid, and (like Popen) ``wait``/``poll``."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None
        self._ended = threading.Event()
        self.on_exit = lambda: None  # the pool's template marks itself dead

    def _exited(self, exit_: dict) -> None:
        if "signal" in exit_:
            try:
                self.returncode = -signal.Signals[str(exit_["signal"])].value
            except KeyError:
                self.returncode = -1
        else:
            self.returncode = int(exit_.get("code", -1))
        self._ended.set()
        self.on_exit()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"template {self.pid}", timeout)
        return self.returncode


class Spawner:
    """One fork server, run by ``python`` (another environment's interpreter, or this one)."""

    def __init__(self, env: dict, cwd: Path, python: str = sys.executable):
        self.env, self.cwd, self.python = env, cwd, python
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")
        self._lock = threading.Lock()  # one spawn at a time on the fork server's channel
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen | None = None
        self._replies: dict[int, list] = {}  # spawn id -> [Event, reply]
        self._children: dict[int, ForkedProcess] = {}
        self._state = threading.Lock()

    def _ensure(self) -> socket.socket:
        if self._sock is not None and self._proc.poll() is None:
            return self._sock
        self.cwd.mkdir(parents=True, exist_ok=True)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = self._executor.submit(
                subprocess.Popen, launch.command(self.python, "forkserver", theirs.fileno()),
                pass_fds=(theirs.fileno(),), close_fds=True, start_new_session=True, stdin=subprocess.DEVNULL,
                env=self.env, cwd=self.cwd).result()
        finally:
            theirs.close()
        try:
            header, _ = messages.recv(mine, max_bytes=0, deadline=time.monotonic() + START_TIMEOUT_S)
        except (OSError, messages.ProtocolError) as exc:
            mine.close()
            self._proc.kill()
            raise OSError(f"the fork server did not start: {exc}") from None
        if header.get("op") != "ready":
            mine.close()
            raise OSError("the fork server did not start")
        mine.settimeout(None)
        self._sock = mine
        threading.Thread(target=self._read, args=(mine,), daemon=True, name="forkserver-reader").start()
        return mine

    def _read(self, sock: socket.socket) -> None:
        """Replies to spawns, and the end of every child, as the fork server reports them."""
        while True:
            try:
                header, _ = messages.recv(sock, max_bytes=0)
            except (OSError, messages.ProtocolError):
                break
            if header.get("op") == "exited":
                with self._state:
                    child = self._children.pop(int(header.get("pid", 0)), None)
                if child is not None:
                    child._exited(header.get("exit") or {})
            else:
                with self._state:
                    waiter = self._replies.get(header.get("id"))
                    if header.get("op") == "spawned":  # known before its "exited" can be read
                        child = ForkedProcess(int(header["pid"]))
                        self._children[child.pid] = child
                        header["child"] = child
                if waiter is not None:
                    waiter[1] = header
                    waiter[0].set()
        # the fork server is gone, and its children with it (PDEATHSIG)
        with self._state:
            children, self._children = self._children, {}
            waiters = list(self._replies.values())
        for child in children.values():
            child._exited({"signal": "SIGKILL"})
        for waiter in waiters:
            waiter[0].set()

    def spawn(self, fd: int, env: dict, cwd: Path) -> ForkedProcess:
        """Fork a template process with only ``fd`` (its control socket), ``env`` and ``cwd``."""
        with self._lock:
            sock = self._ensure()
            spawn_id = next(self._ids)
            waiter = [threading.Event(), None]
            with self._state:
                self._replies[spawn_id] = waiter
            try:
                messages.send(sock, {"op": "spawn", "id": spawn_id, "env": env, "cwd": str(cwd)})
                socket.send_fds(sock, [b"F"], [fd])
                if not waiter[0].wait(START_TIMEOUT_S) or waiter[1] is None:
                    raise OSError("the fork server did not answer")
                reply = waiter[1]
                if reply.get("op") != "spawned":
                    raise OSError(str(reply.get("message", "the fork server could not fork")))
                return reply["child"]
            finally:
                with self._state:
                    self._replies.pop(spawn_id, None)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._executor.shutdown(wait=False)
