"""Architecture rules that keep the layers one-way (docs/architecture.md)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_PUBLISHER = {"flask", "werkzeug", "gunicorn", "serving", "jinja2"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_publisher_knows_nothing_of_http_or_serving():
    offenders = {}
    for path in sorted((ROOT / "publisher").rglob("*.py")):
        bad = imported_modules(path) & FORBIDDEN_IN_PUBLISHER
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_publisher_imports_without_flask_loaded():
    code = ("import sys, publisher.publish, publisher.cli, publisher.registry, publisher.diff;"
            "bad = [m for m in ('flask', 'werkzeug', 'serving') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_only_the_edges_read_the_environment():
    """Settings are read once (publisher/settings.py); the worker env is built by the pool."""
    allowed = {"publisher/settings.py", "serving/runtime/pool.py", "scorepub_sandbox/template.py",
               "scorepub_sandbox/forkserver.py",  # a template's environment, set in the forked child
               "serving/server.py", "serving/metrics.py",  # these two: prometheus-client's own variable
               "publisher/installers.py"}  # the installers' environment: this one less SCOREPUB_*, PYTHON*, PIP_*
    readers = set()
    for path in [p for package in ("publisher", "serving", "scorepub_sandbox") for p in (ROOT / package).rglob("*.py")]:
        if "os.environ" in path.read_text() or "getenv(" in path.read_text():
            readers.add(str(path.relative_to(ROOT)))
    assert readers <= allowed, readers - allowed


def test_the_console_script_is_installed():
    exe = Path(sys.executable).parent / "scorepub"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "publish" in proc.stdout and "serve" in proc.stdout
