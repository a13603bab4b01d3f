"""``max_concurrent_calls`` per service, across every web process of one server.

Each call in flight holds an exclusive ``fcntl`` lock on one byte of the service's lock file;
past the limit no byte is free and the call is refused. The kernel drops a process's locks when
it dies, so a crashed web process never leaks its slots. POSIX locks belong to a process, not a
thread, so the threads of one process also keep the set of slots they hold.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path


class Throttle:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fds: dict[str, int] = {}
        self._held: dict[str, set[int]] = {}
        self._lock = threading.Lock()

    def _fd(self, key: str) -> int:
        fd = self._fds.get(key)
        if fd is None:
            fd = os.open(self.folder / f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fds[key] = fd
        return fd

    def acquire(self, key: str, limit: int) -> int | None:
        """A slot number, or None when ``limit`` calls are already in flight."""
        with self._lock:
            fd = self._fd(key)
            held = self._held.setdefault(key, set())
            for slot in range(limit):
                if slot in held:
                    continue
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
                except OSError:
                    continue
                held.add(slot)
                return slot
        return None

    def release(self, key: str, slot: int) -> None:
        with self._lock:
            fcntl.lockf(self._fds[key], fcntl.LOCK_UN, 1, slot)
            self._held[key].discard(slot)

    @contextlib.contextmanager
    def slot(self, key: str, limit: int):
        slot = self.acquire(key, limit)
        try:
            yield slot
        finally:
            if slot is not None:
                self.release(key, slot)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()
