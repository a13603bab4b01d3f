"""Run the app under gunicorn, configured from :class:`~publisher.settings.Settings`."""
from __future__ import annotations

import dataclasses
import os
import shutil
import sys

from gunicorn.app.base import BaseApplication

from publisher.registry import Registry

from .runtime.dispatcher import probe_sandbox
from .runtime.pool import remove_pool_dir
from .state import SANDBOX_OFF_WARNING


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


def sweep_run_dir(run_dir) -> None:
    """Remove pool folders left by web processes that are gone (a crash, a kill -9)."""
    for folder in run_dir.glob("p-*-*"):
        try:
            pid = int(folder.name.split("-")[1])
            os.kill(pid, 0)
        except (ValueError, IndexError):
            continue
        except ProcessLookupError:
            remove_pool_dir(folder)
        except PermissionError:
            pass  # alive, someone else's


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
        "on_exit": lambda server: shutil.rmtree(metrics_dir, ignore_errors=True),
    }
    _Gunicorn(settings, options).run()
