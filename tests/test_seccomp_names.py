"""The seccomp rules name real syscalls: a misspelled name fails loudly instead of dropping a denial."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from scorepub_sandbox import sandbox

ROOT = Path(__file__).resolve().parent.parent
seccomp = pytest.importorskip("pyseccomp")

# the architectures libseccomp knows that a Python 3.11 service may plausibly run on
ARCHES = ("X86_64", "AARCH64", "X86", "X32", "ARM", "RISCV64", "PPC64LE", "PPC64", "S390X", "MIPSEL64", "MIPS")


def test_every_rule_name_resolves_on_this_machine():
    numbers = sandbox.resolve_syscalls(sandbox.seccomp_names())
    assert set(numbers) == set(sandbox.seccomp_names())
    native = [n for n, nr in numbers.items() if nr < 0]
    assert set(native) <= set(sandbox.MAY_BE_ABSENT) | sandbox.MULTIPLEXED


@pytest.mark.parametrize("arch", ARCHES)
def test_every_rule_name_is_known_on_each_architecture(arch):
    numbers = sandbox.resolve_syscalls(sandbox.seccomp_names(), getattr(seccomp.Arch, arch))
    assert all(nr != -1 for nr in numbers.values())


def test_the_absent_list_is_not_stale():
    """Each name said to be absent somewhere really is absent on one of those architectures."""
    for name in sandbox.MAY_BE_ABSENT:
        assert any(seccomp.resolve_syscall(getattr(seccomp.Arch, a), name) < -1 for a in ARCHES), name


def test_filters_build_from_the_real_lists():
    sandbox._filter()  # built, never loaded into the test process
    sandbox._worker_filter(12345)


@pytest.mark.parametrize("where", ["_ALWAYS_DENIED", "_WORKER_DENIED"])
def test_a_misspelled_name_fails_loudly(monkeypatch, where):
    monkeypatch.setattr(sandbox, where, getattr(sandbox, where) + ("sokcet",))
    with pytest.raises(sandbox.SandboxUnavailable, match="unknown syscall name 'sokcet'"):
        sandbox._filter()  # the template's filter checks the workers' names too


def test_a_name_missing_on_this_architecture_that_is_not_expected_to_be_fails():
    with pytest.raises(sandbox.SandboxUnavailable, match="'socketcall' does not exist on this architecture"):
        sandbox.resolve_syscalls(["socketcall"], seccomp.Arch.X86_64)
    sandbox.resolve_syscalls(["fork"], seccomp.Arch.AARCH64)  # expected there: accepted


def test_the_start_up_probe_reports_a_misspelled_worker_rule():
    """`scorepub serve` runs this probe in strict mode and refuses to start on any inactive layer."""
    code = ("import sys, orjson; from scorepub_sandbox import sandbox, template;"
            "sandbox._WORKER_DENIED += ('vfrok',);"
            "sys.stdout.write(orjson.dumps(template.probe('strict')).decode())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = orjson.loads(proc.stdout)
    assert report["seccomp"]["active"] is False
    assert "unknown syscall name 'vfrok'" in report["seccomp"]["detail"]
