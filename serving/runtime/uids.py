"""Sandbox uids, unique on this machine while a template uses one.

Run as root, each template drops to a uid of its own, so two services can never read each
other's files or signal each other's workers. A uid is *claimed* by holding an exclusive
``flock`` on ``<dir>/<uid>``: every scorepub process on the machine (replicas too) sees the
same claims, and the kernel drops a claim when its holder dies, so a crash leaks nothing.
"""
from __future__ import annotations

import fcntl
import os
import random
import threading
from pathlib import Path

UID_COUNT = 50_000


class UidClaim:
    def __init__(self, uid: int, fd: int, owner: "UidAllocator"):
        self.uid, self._fd, self._owner = uid, fd, owner

    def release(self) -> None:
        self._owner._release(self)


class UidAllocator:
    def __init__(self, base: int, folder: Path, count: int = UID_COUNT):
        self.base, self.count = base, count
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._mine: dict[int, int] = {}  # uid -> fd of the claims this process holds

    def take(self) -> UidClaim:
        """Claim a free uid, starting at a random one so processes rarely race for the same."""
        start = random.randrange(self.count)
        with self._lock:
            for i in range(self.count):
                uid = self.base + (start + i) % self.count
                if uid in self._mine:
                    continue  # flock would grant this process its own claim again
                fd = os.open(self.folder / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._mine[uid] = fd
                return UidClaim(uid, fd, self)
        raise RuntimeError(f"all {self.count} sandbox uids from {self.base} are in use")

    def _release(self, claim: UidClaim) -> None:
        with self._lock:
            fd = self._mine.pop(claim.uid, None)
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock

    def held(self) -> set[int]:
        with self._lock:
            return set(self._mine)
