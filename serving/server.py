"""Run the app under gunicorn, configured from :class:`~publisher.settings.Settings`."""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

from gunicorn.app.base import BaseApplication

from publisher.registry import Registry

# nothing here may import serving.metrics (directly or through the app): prometheus-client
# must first see PROMETHEUS_MULTIPROC_DIR, which run() sets
from .runtime.dispatcher import SANDBOX_OFF_WARNING, probe_sandbox
from .runtime.pool import sweep_run_dir


class _Gunicorn(BaseApplication):
    def __init__(self, settings, options: dict):
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25 opens a control socket in $HOME by default; scorepub does not use it,
            # and two servers on one machine would fight over the one path
            self.cfg.set("control_socket_disable", True)

    def load(self):
        from .app import create_app

        return create_app(self.settings)


def _child_exit(server, worker) -> None:
    from .metrics import mark_process_dead

    mark_process_dead(worker.pid)


def check_sandbox(settings) -> dict:
    """Refuse to start in strict mode without every layer; shout when the sandbox is off."""
    report = probe_sandbox(settings.sandbox)
    if settings.sandbox == "off":
        print(f"\n*** WARNING: {SANDBOX_OFF_WARNING} ***\n", file=sys.stderr, flush=True)
    elif report["missing"]:
        details = "; ".join(f"{name}: {report['layers'][name].get('detail', 'unavailable')}"
                            for name in report["missing"])
        print(f"scorepub: refusing to start: SCOREPUB_SANDBOX=strict and this host lacks sandbox layer(s) "
              f"{', '.join(report['missing'])} ({details}). Fix the host, or set SCOREPUB_SANDBOX=off for "
              "development only.", file=sys.stderr, flush=True)
        raise SystemExit(2)
    else:
        active = ", ".join(n for n, s in report["layers"].items() if s.get("active"))
        print(f"scorepub: sandbox strict, layers active: {active} (Landlock ABI {report['landlock_abi']})",
              file=sys.stderr, flush=True)
    return report


class PoolHostProcess:
    """The replica's pool host (``serving.runtime.host``), started before gunicorn forks its web
    processes and started again if it ever dies; it dies with this (master) process."""

    def __init__(self, settings):
        self.settings = settings
        self.owner = os.getpid()
        self.path = settings.run_dir / f"pools-{self.owner}.sock"
        self.proc: subprocess.Popen | None = None
        self.stopping = False
        self.ready = threading.Event()
        # a long-lived thread starts it: the host's PR_SET_PDEATHSIG follows the starting thread
        self.thread = threading.Thread(target=self._supervise, daemon=True, name="pool-host")

    def start(self, timeout_s: float = 120) -> "PoolHostProcess":
        self.thread.start()
        if not self.ready.wait(timeout_s) or self.stopping:
            self.stop()
            raise SystemExit("scorepub: the pool host did not start (its error is above)")
        return self

    def _supervise(self) -> None:
        while not self.stopping:
            started = time.monotonic()
            # its own session: a Ctrl-C or a signal to the server's process group reaches gunicorn,
            # which stops the host last (on_exit), after the web processes are done with it
            self.proc = subprocess.Popen([sys.executable, "-m", "serving.runtime.host", str(self.path)],
                                         stdin=subprocess.DEVNULL, close_fds=True, start_new_session=True)
            self._wait_listening()
            code = self.proc.wait()
            if not self.ready.is_set():  # it never came up: a fault to report, not to retry
                self.stopping = True
                self.ready.set()
            if self.stopping:
                return
            logging.getLogger("scorepub.server").error("the pool host exited (%s); starting it again", code)
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))  # no restart storm

    def _wait_listening(self) -> None:
        while self.proc.poll() is None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(self.path))
                    self.ready.set()
                    return
                except OSError:
                    time.sleep(0.05)

    def stop(self) -> None:
        if os.getpid() != self.owner:
            return  # a web process unwinding gunicorn's stack after its fork: not ours to stop
        self.stopping = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def run(settings, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    settings = dataclasses.replace(settings, host=host or settings.host, port=port or settings.port,
                                   web_workers=workers or settings.web_workers)
    check_sandbox(settings)
    sweep_run_dir(settings.run_dir)
    Registry(settings.database_url).dispose()  # migrate once, before the workers start
    # prometheus-client's multiprocess mode: set before any web process imports it
    metrics_dir = settings.run_dir / f"metrics-{os.getpid()}"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    pools = PoolHostProcess(settings).start()
    settings = dataclasses.replace(settings, pool_socket=str(pools.path))

    def on_exit(server) -> None:
        pools.stop()
        shutil.rmtree(metrics_dir, ignore_errors=True)

    options = {
        "bind": f"{settings.host}:{settings.port}",
        "workers": settings.web_workers,
        "worker_class": "gthread",
        "threads": settings.web_threads,
        # a script may legitimately run up to the server's maximum timeout
        "timeout": settings.max_timeout_s + 30,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "scorepub",
        "child_exit": _child_exit,
        "on_exit": on_exit,
    }
    try:
        _Gunicorn(settings, options).run()
    finally:
        pools.stop()
