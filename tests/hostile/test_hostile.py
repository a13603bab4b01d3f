"""Hostile scripts (contract.md, "Sandbox"): each one tries a breach on a real, strict server.

Every case is a published service. The test asserts the call ends with a clear, documented
error or with proof that the breach failed, and that the same server then answers a normal call.
Run as root (uids dropped) and as a non-root user (user namespaces) by .ci/run.
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import orjson
import pytest

from conftest import EXAMPLES, Server, cli_env, error_of

NO_INPUT = {"inputs": {}}
ONE_ROW = {"inputs": {"input1": {"columns": [{"name": "n", "type": "integer"}]}}}
MARKER_DIR = Path("/tmp")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    home = tmp_path_factory.mktemp("hostile-home")
    os.chmod(home, 0o755)
    env = cli_env(home, SCOREPUB_SANDBOX="strict", SCOREPUB_WEB_WORKERS="1", SCOREPUB_POOL_SIZE="1")
    srv = Server(home, env)
    srv.publish(EXAMPLES / "hello-bundle", "healthy")
    srv.experiments = tmp_path_factory.mktemp("hostile-experiments")
    srv.start()
    yield srv
    srv.stop()


def publish(srv, name: str, script: str, schema=NO_INPUT) -> None:
    folder = srv.experiments / name
    folder.mkdir()
    folder.joinpath("score.py").write_text(script)
    folder.joinpath("schema.json").write_bytes(orjson.dumps(schema))
    srv.publish(folder, name)  # in this process, as `scorepub publish` does; the server notices


def call(srv, name: str, rows=None):
    body = {"input1": rows} if rows is not None else {}
    return srv.score(name, body)


def still_serving(srv) -> None:
    r = srv.score("healthy", [{"name": "after"}])
    assert r.status_code == 200 and r.json()["output1"][0]["greeting"] == "Hello, after!", r.text


def script_error(response) -> str:
    """The Error 0085 text of a script that raised."""
    return error_of(response, 400, "ModuleExecutionError", "Error0085")["details"][0]["message"]


def breach(body: str, imports: str = "import os") -> str:
    return f"{imports}\nimport pandas as pd\n\ndef azureml_main():\n" + \
        "".join(f"    {line}\n" for line in body.strip().splitlines())


# -- files -------------------------------------------------------------------------------------

def test_read_etc_passwd(hostile):
    publish(hostile, "read-passwd", breach("return pd.DataFrame({'x': [open('/etc/passwd').read()]}),"))
    r = call(hostile, "read-passwd")
    assert "PermissionError" in script_error(r) and "root:x:0:0" not in r.text
    still_serving(hostile)


def test_read_the_registry_and_another_artifact(hostile):
    registry = hostile.home / "registry.sqlite3"
    artifact = next((hostile.home / "artifacts").rglob("*.zip"))
    for i, path in enumerate((registry, artifact, hostile.home)):
        name = f"read-private-{i}"
        publish(hostile, name, breach(f"return pd.DataFrame({{'x': [len(open({str(path)!r}, 'rb').read())]}}),"))
        assert "PermissionError" in script_error(call(hostile, name))
    still_serving(hostile)


def test_list_the_root_folder(hostile):
    publish(hostile, "list-root", breach("return pd.DataFrame({'x': os.listdir('/')}),"))
    assert "PermissionError" in script_error(call(hostile, "list-root"))
    still_serving(hostile)


def test_write_outside_the_call_folder(hostile):
    marker = MARKER_DIR / f"scorepub-pwned-{uuid.uuid4().hex}"
    publish(hostile, "write-outside", breach(f"open({str(marker)!r}, 'w').write('pwned')\nreturn pd.DataFrame(),"))
    assert "PermissionError" in script_error(call(hostile, "write-outside"))
    assert not marker.exists()
    publish(hostile, "write-home", breach(f"open({str(hostile.home / 'x.txt')!r}, 'w').write('x')\n"
                                          "return pd.DataFrame(),"))
    assert "PermissionError" in script_error(call(hostile, "write-home")) and not (hostile.home / "x.txt").exists()
    still_serving(hostile)


def test_write_inside_the_call_folder_works_and_is_gone_after(hostile):
    publish(hostile, "write-inside", breach("open('mine.txt', 'w').write('ok')\n"
                                            "return pd.DataFrame({'cwd': [os.getcwd()], 'files': [sorted(os.listdir('.'))]}),"))
    first = call(hostile, "write-inside").json()["output1"][0]
    assert first["files"] == "['Script Bundle', 'mine.txt']"
    assert not Path(first["cwd"]).exists()


# -- network -------------------------------------------------------------------------------------

def test_tcp_connect_to_the_servers_own_port(hostile):
    publish(hostile, "tcp", breach(f"s = socket.create_connection(('127.0.0.1', {hostile.port}), timeout=2)\n"
                                   "return pd.DataFrame(),", "import socket"))
    message = script_error(call(hostile, "tcp"))
    assert "PermissionError" in message or "Network is unreachable" in message
    still_serving(hostile)


def test_udp_send(hostile):
    publish(hostile, "udp", breach("s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                                   "s.sendto(b'x', ('127.0.0.1', 53))\nreturn pd.DataFrame(),", "import socket"))
    assert "PermissionError" in script_error(call(hostile, "udp"))
    still_serving(hostile)


def test_connect_to_a_pathname_unix_socket(hostile, tmp_path):
    import socket

    path = Path("/tmp") / f"scorepub-test-{uuid.uuid4().hex[:8]}.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    os.chmod(path, 0o777)
    listener.listen(1)
    listener.settimeout(0.5)
    try:
        publish(hostile, "unix", breach(f"s = socket.socket(socket.AF_UNIX)\ns.connect({str(path)!r})\n"
                                        "return pd.DataFrame(),", "import socket"))
        assert "PermissionError" in script_error(call(hostile, "unix"))
        with pytest.raises(socket.timeout):
            listener.accept()  # nobody got through
    finally:
        listener.close()
        path.unlink()
    still_serving(hostile)


# -- processes -------------------------------------------------------------------------------------

def test_fork_bomb(hostile):
    publish(hostile, "fork-bomb", breach("while True:\n    os.fork()"))
    assert "PermissionError" in script_error(call(hostile, "fork-bomb"))
    still_serving(hostile)


def test_subprocess_and_os_system(hostile):
    marker = MARKER_DIR / f"scorepub-pwned-{uuid.uuid4().hex}"
    publish(hostile, "subprocess", breach(f"subprocess.run(['touch', {str(marker)!r}])\nreturn pd.DataFrame(),",
                                          "import subprocess"))
    assert "PermissionError" in script_error(call(hostile, "subprocess"))
    publish(hostile, "os-system", breach(f"code = os.system('touch {marker}')\nreturn pd.DataFrame({{'code': [code]}}),"))
    r = call(hostile, "os-system")
    assert r.status_code == 200 and r.json()["output1"][0]["code"] != 0
    assert not marker.exists()
    still_serving(hostile)


def test_kill_the_parent_and_other_processes(hostile):
    web_pid = hostile.proc.pid
    publish(hostile, "kill-parent", breach(f"results = []\nfor pid in (os.getppid(), 1, {web_pid}, -1):\n"
                                           "    try:\n        os.kill(pid, 9)\n        results.append('killed')\n"
                                           "    except OSError as exc:\n        results.append(type(exc).__name__)\n"
                                           "return pd.DataFrame({'r': results}),"))
    r = call(hostile, "kill-parent")
    assert r.status_code == 200, r.text
    assert "killed" not in [row["r"] for row in r.json()["output1"]]
    assert hostile.proc.poll() is None
    still_serving(hostile)


def test_ptrace(hostile):
    publish(hostile, "ptrace", breach("libc = ctypes.CDLL(None, use_errno=True)\n"
                                      "rc = libc.syscall(101, 16, 1, 0, 0)  # PTRACE_ATTACH to pid 1\n"
                                      "return pd.DataFrame({'rc': [rc], 'errno': [ctypes.get_errno()]}),",
                                      "import ctypes"))
    row = call(hostile, "ptrace").json()["output1"][0]
    assert row["rc"] == -1 and row["errno"] == 1  # EPERM
    still_serving(hostile)


def test_environment_carries_no_secrets(hostile):
    publish(hostile, "environ", breach("return pd.DataFrame({'k': sorted(os.environ)}),"))
    keys = [row["k"] for row in call(hostile, "environ").json()["output1"]]
    assert not [k for k in keys if k.startswith("SCOREPUB") or "DATABASE" in k or "PG" in k]


# -- resources -------------------------------------------------------------------------------------

def test_infinite_loop_is_504(hostile):
    publish(hostile, "loop", breach("while True:\n    pass"), {**NO_INPUT, "limits": {"timeout_s": 2}})
    error_of(call(hostile, "loop"), 504, "GatewayTimeout", "BackendScoreTimeout")
    still_serving(hostile)


def test_memory_bomb_is_413(hostile):
    publish(hostile, "memory-bomb", breach("blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))"),
            {**NO_INPUT, "limits": {"memory_mb": 256}})
    error_of(call(hostile, "memory-bomb"), 413, "MemoryQuotaViolation")
    still_serving(hostile)


def test_deep_recursion(hostile):
    publish(hostile, "recursion", breach("def f(n):\n    return f(n + 1)\nreturn f(0),"))
    assert "RecursionError" in script_error(call(hostile, "recursion"))
    # 256 MB rather than the default 1024: the frames fill memory four times sooner (about 15 s less)
    publish(hostile, "recursion-unlimited", breach("sys.setrecursionlimit(10**9)\ndef f(n):\n    return f(n + 1) + 1\n"
                                                   "return f(0),", "import sys"), {**NO_INPUT, "limits": {"memory_mb": 256}})
    r = call(hostile, "recursion-unlimited")
    assert r.status_code in (400, 500) and r.json()["error"]["code"] in ("ModuleExecutionError", "InternalError")
    still_serving(hostile)


def test_segfault_through_ctypes_is_500_naming_the_signal(hostile):
    publish(hostile, "segfault", breach("ctypes.string_at(0)\nreturn pd.DataFrame(),", "import ctypes"))
    r = call(hostile, "segfault")
    assert "SIGSEGV" in error_of(r, 500, "InternalError")["message"]
    still_serving(hostile)


def test_huge_output_is_refused_clearly(hostile):
    publish(hostile, "huge-output", breach("import numpy as np\nreturn pd.DataFrame(np.zeros((10_000_000, 10))),"),
            {**NO_INPUT, "limits": {"memory_mb": 2048, "timeout_s": 60}})
    r = call(hostile, "huge-output")
    assert (r.status_code, r.json()["error"]["code"]) in ((413, "MemoryQuotaViolation"), (400, "ModuleExecutionError"))
    if r.status_code == 400:
        assert r.json()["error"]["details"][0]["code"] == "OutputTooLarge"
    still_serving(hostile)


def test_a_script_that_returns_nothing(hostile):
    publish(hostile, "no-return", "def azureml_main():\n    pass\n")
    assert "returned None" in script_error(call(hostile, "no-return"))


# -- isolation between calls ------------------------------------------------------------------------

PATCHER = """
import builtins
import pandas as pd

def azureml_main(df):
    before = {"print": builtins.print.__name__, "concat": pd.concat.__name__, "marker": getattr(builtins, "pwned", None)}
    builtins.pwned = "yes"
    builtins.print = lambda *a, **k: None
    pd.concat = lambda *a, **k: "patched"
    return pd.DataFrame({"seen": [str(before)]}),
"""


def test_monkeypatching_in_a_per_call_service_is_not_seen_by_the_next_call(hostile):
    publish(hostile, "patcher", PATCHER, {**ONE_ROW, "isolation": "per-call"})
    for _ in range(3):
        seen = call(hostile, "patcher", [{"n": 1}]).json()["output1"][0]["seen"]
        assert seen == "{'print': 'print', 'concat': 'concat', 'marker': None}"


def test_readyz_reports_every_layer_active(hostile):
    report = hostile.get("/readyz").json()
    sandbox = report["sandbox"]
    assert sandbox["mode"] == "strict" and sandbox["missing"] == []
    for layer in ("fds", "pdeathsig", "no_new_privs", "rlimits", "namespaces", "uid", "landlock", "seccomp"):
        assert sandbox["layers"][layer]["active"] is True, layer
    assert sandbox["landlock_abi"] >= 4


def test_trickling_bytes_cannot_stretch_the_deadline(hostile):
    """Writing to the worker's own socket a byte at a time must not keep the call alive."""
    publish(hostile, "trickle", breach("import time\nwhile True:\n    for fd in range(3, 64):\n        try:\n"
                                       "            os.write(fd, b'\\0')\n        except OSError:\n            pass\n"
                                       "    time.sleep(0.5)"), {**NO_INPUT, "limits": {"timeout_s": 2}})
    started = time.monotonic()
    r = call(hostile, "trickle")
    assert time.monotonic() - started < 6
    assert r.status_code in (504, 500), r.text  # a deadline, or a broken protocol: never a hang
    still_serving(hostile)


def test_unencodable_output_is_a_clear_error(hostile):
    publish(hostile, "unencodable", breach("return pd.DataFrame({'big': [10**30], 's': ['\\ud800']}),"))
    r = call(hostile, "unencodable")
    assert r.status_code == 200, r.text
    row = r.json()["output1"][0]
    assert row["big"] == str(10**30) and row["s"] == "?"
    still_serving(hostile)
