"""The two ways an environment is resolved and installed: uv (the default) and pip (the fallback).

Both produce the same thing: a ``requirements.lock`` of ``name==version`` lines with sha256
hashes, installed wheels-only and hash-checked into a fresh virtual environment. uv is a
dependency of scorepub and much faster; pip is used where uv cannot run
(``SCOREPUB_ENV_INSTALLER=pip``, or uv missing). pip has no preferences: it picks the newest
releases the requirements allow, where uv keeps the server's versions of the classic packages.
Every failure is a PublishError with one line that names the problem.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson

from .errors import PublishError

_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: the child after fork only calls it


def _die_with_parent() -> None:
    """In the child: a build stops with the thread that runs it (a stopped replica or CLI),
    rather than finish unwatched; the half-built folder is removed by the next build."""
    _PRCTL(1, 9)  # PR_SET_PDEATHSIG, SIGKILL


def one_line(stderr: str) -> str:
    """An installer's explanation of a failure, as one line that names the package."""
    lines = [ln.strip() for ln in re.sub(r"[×╰─▶│]", " ", stderr).splitlines()]
    text = " ".join(ln for ln in lines if ln and not ln.startswith(("hint:", "help:", "WARNING:", "[notice]")))
    text = re.sub(r"\s+", " ", re.sub(r"ERROR:|error:|cause:|No solution found when resolving dependencies:?", " ",
                                      text)).strip()
    text = re.sub(r"(?i),? (?:and )?(?:so )?we can conclude that your requirements are unsatisfiable\.?$", ".", text)
    text = text.replace("the package registry", "the package index")
    text = re.sub(r"(?i)^Because (.*?),? and you require (.*?)\.$", r"\1 (you require \2)", text)
    text = re.sub(r"(?i)\. And because you require (.*?)\.$", r" (you require \1)", text)
    text = re.sub(r"^Because ", "", text)
    if "no usable wheels" in text:
        text += " (environments install wheels only)"
    return text[:400] or "the installer failed without saying why"


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCOREPUB_", "VIRTUAL_ENV", "PYTHON", "PIP_"))}
    env.update(NO_COLOR="1", **extra)
    return env


class Installer:
    name = ""

    def __init__(self, settings, index_args: list[str]):
        self.settings = settings
        self.index_args = index_args

    def _run(self, command: list[str], timeout: float, what: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=self.env, cwd=cwd,
                                  stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        except subprocess.TimeoutExpired:
            raise PublishError(f"{what} took longer than SCOREPUB_ENV_BUILD_TIMEOUT_S="
                               f"{self.settings.env_build_timeout_s} s", field="requirements.txt") from None

    def _check(self, proc: subprocess.CompletedProcess, what: str) -> None:
        if proc.returncode != 0:
            raise PublishError(f"{what}: {one_line(proc.stderr)}", field="requirements.txt")

    # each installer: compile(folder, preferences, timeout) -> lock bytes, from requirements.txt,
    # classic.txt and constraints.txt in ``folder``; create(path, timeout); install(lock_path,
    # python, timeout), then compile_bytecode(lock_path, python, timeout)


class UvInstaller(Installer):
    name = "uv"

    def __init__(self, settings, index_args: list[str], uv: str):
        super().__init__(settings, index_args)
        self.uv = uv
        self.env = _clean_env(UV_NO_PROGRESS="1", UV_PYTHON_DOWNLOADS="never")

    def compile(self, folder: Path, preferences: list[str], timeout: float) -> bytes:
        out = folder / "requirements.lock"
        out.write_text("".join(f"{p}\n" for p in preferences))  # uv prefers what it finds there
        proc = self._run([self.uv, "pip", "compile", "requirements.txt", "classic.txt", "--constraint", "constraints.txt",
                          "--python", sys.executable, "--generate-hashes", "--no-build", "--no-header", "--quiet",
                          "--output-file", out.name, "--directory", str(folder), *self.index_args],
                         timeout, "resolving requirements.txt")
        self._check(proc, "requirements.txt: cannot be resolved")
        return out.read_bytes()

    def create(self, path: Path, timeout: float) -> None:
        self._check(self._run([self.uv, "venv", str(path), "--python", sys.executable, "--quiet"], timeout,
                              "creating the environment"), "environment: uv venv failed")

    def _sync(self, lock: Path, python: str, timeout: float, what: str, *extra: str) -> None:
        self._check(self._run([self.uv, "pip", "sync", str(lock), "--python", python, "--require-hashes", "--no-build",
                               "--quiet", *extra, *self.index_args], timeout, what), f"environment: {what} failed")

    def install(self, lock: Path, python: str, timeout: float) -> None:
        self._sync(lock, python, timeout, "installing")

    def compile_bytecode(self, lock: Path, python: str, timeout: float) -> None:
        self._sync(lock, python, timeout, "compiling bytecode", "--compile-bytecode")  # nothing left to install


class PipInstaller(Installer):
    """pip of the server's interpreter: ``install --dry-run --report`` resolves (pip 22.2+),
    ``--python`` installs into the new environment (pip 22.3+), which needs no pip of its own."""

    name = "pip"

    def __init__(self, settings, index_args: list[str]):
        super().__init__(settings, index_args)
        self.env = _clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        self.pip = [sys.executable, "-m", "pip"]

    def compile(self, folder: Path, preferences: list[str], timeout: float) -> bytes:
        report = folder / "report.json"
        proc = self._run([*self.pip, "install", "--dry-run", "--ignore-installed", "--only-binary=:all:", "--quiet",
                          "--report", str(report), "-r", "requirements.txt", "-r", "classic.txt",
                          "-c", "constraints.txt", *self.index_args], timeout, "resolving requirements.txt", cwd=folder)
        self._check(proc, "requirements.txt: cannot be resolved")
        lines = []
        for item in sorted(orjson.loads(report.read_bytes())["install"], key=lambda i: i["metadata"]["name"].lower()):
            sha = item["download_info"].get("archive_info", {}).get("hashes", {}).get("sha256")
            line = f"{item['metadata']['name'].lower()}=={item['metadata']['version']}"
            lines.append(f"{line} \\\n    --hash=sha256:{sha}\n" if sha else f"{line}\n")
        return "".join(lines).encode()

    def create(self, path: Path, timeout: float) -> None:
        self._check(self._run([sys.executable, "-m", "venv", "--without-pip", str(path)], timeout,
                              "creating the environment"), "environment: python -m venv failed")

    def install(self, lock: Path, python: str, timeout: float) -> None:
        self._check(self._run([*self.pip, "--python", python, "install", "--no-deps", "--require-hashes",
                               "--only-binary=:all:", "--no-compile", "--quiet", "-r", str(lock), *self.index_args],
                              timeout, "installing"), "environment: installing failed")

    def compile_bytecode(self, lock: Path, python: str, timeout: float) -> None:
        site = subprocess.run([python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        self._check(self._run([python, "-I", "-m", "compileall", "-q", "-j", "0", site], timeout,
                              "compiling bytecode"), "environment: compiling bytecode failed")


def installer_for(settings, index_args: list[str], uv: str | None = None) -> Installer:
    """uv unless SCOREPUB_ENV_INSTALLER says pip, or uv is not installed (then pip, documented)."""
    if settings.env_installer == "pip":
        return PipInstaller(settings, index_args)
    if uv is None:
        try:
            from uv import find_uv_bin

            uv = find_uv_bin()
        except (ImportError, FileNotFoundError):
            uv = shutil.which("uv")
    return UvInstaller(settings, index_args, uv) if uv else PipInstaller(settings, index_args)
