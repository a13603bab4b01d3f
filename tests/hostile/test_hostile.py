"""Hostile scripts (contract.md, "Sandbox"): each one tries a breach on a real, strict server.

Every case is a published service, declared with ``service()`` just above the test that calls
it. The module's fixture publishes them all and waits until every one is warm, so the templates
start side by side rather than one per test. The test asserts the call ends with a clear,
documented error or with proof that the breach failed, and that the same server then answers a
normal call.
Run as root (uids dropped) and as a non-root user (user namespaces) by .ci/run, and twice in
each: with every service in the default environment, and with every service in an environment
of its own (built from a requirements.txt, run under that environment's interpreter).
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import orjson
import pytest

from conftest import EXAMPLES, POLL_TIMEOUT, Server, cli_env, error_of, shared_env_dir, wait_until

NO_INPUT = {"inputs": {}}
ONE_ROW = {"inputs": {"input1": {"columns": [{"name": "n", "type": "integer"}]}}}
MARKER_DIR = Path("/tmp")
WARM_TIMEOUT_S = 300  # every service's template, started at once on a possibly busy machine

# name -> (score.py, or a function of the server giving it; schema.json)
SERVICES: dict[str, tuple] = {}


def service(name: str, script, schema=NO_INPUT) -> str:
    """Declare a hostile service (published and warmed by the fixture); returns its name."""
    assert name not in SERVICES, name
    SERVICES[name] = (script, schema)
    return name


OWN_ENVIRONMENT = "tabulate==0.9.0\n"
DISK_MB = 32  # each template's private disk here  # not in the default set: each service gets a built environment


@pytest.fixture(scope="module", params=["default-environment", "own-environment"])
def hostile(request, tmp_path_factory):
    home = tmp_path_factory.mktemp("hostile-home")
    os.chmod(home, 0o755)
    env = cli_env(home, SCOREPUB_SANDBOX="strict", SCOREPUB_WEB_WORKERS="1", SCOREPUB_POOL_SIZE="1",
                  SCOREPUB_ENV_DIR=str(shared_env_dir()), SCOREPUB_WORKER_DISK_MB=str(DISK_MB))
    srv = Server(home, env)
    srv.requirements = OWN_ENVIRONMENT if request.param == "own-environment" else None
    srv.publish(EXAMPLES / "hello-bundle", "healthy")
    srv.experiments = tmp_path_factory.mktemp("hostile-experiments")
    srv.start()
    try:
        for name, (script, schema) in SERVICES.items():
            publish(srv, name, script(srv) if callable(script) else script, schema)
        warm_every_service(srv)
        yield srv
    finally:
        srv.stop()


def publish(srv, name: str, script: str, schema=NO_INPUT) -> None:
    folder = srv.experiments / name
    folder.mkdir()
    folder.joinpath("score.py").write_text(script)
    folder.joinpath("schema.json").write_bytes(orjson.dumps(schema))
    if srv.requirements is not None:
        folder.joinpath("requirements.txt").write_text(srv.requirements)
    srv.publish(folder, name)  # in this process, as `scorepub publish` does; the server notices


def warm_every_service(srv) -> None:
    """/readyz starts the pool of every live version; poll it until each is ready (or its load
    failed), so no test waits for a template start."""
    def all_warm():
        services = srv.get("/readyz", timeout=POLL_TIMEOUT).json()["services"]
        return set(services) >= set(SERVICES) and all(s["ready"] or s["load_error"] for s in services.values())

    wait_until(all_warm, WARM_TIMEOUT_S, "every hostile service warm", interval=0.5)


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

READ_PASSWD = service("read-passwd", breach("return pd.DataFrame({'x': [open('/etc/passwd').read()]}),"))


def test_read_etc_passwd(hostile):
    r = call(hostile, READ_PASSWD)
    assert "PermissionError" in script_error(r) and "root:x:0:0" not in r.text
    still_serving(hostile)


def private_paths(srv) -> tuple:
    """The registry, an artifact (healthy's: it is published first), the home folder."""
    return srv.home / "registry.sqlite3", next((srv.home / "artifacts").rglob("*.zip")), srv.home


READ_PRIVATE = [service(f"read-private-{i}", lambda srv, i=i: breach(
    f"return pd.DataFrame({{'x': [len(open({str(private_paths(srv)[i])!r}, 'rb').read())]}}),")) for i in range(3)]


def test_read_the_registry_and_another_artifact(hostile):
    for name in READ_PRIVATE:
        assert "PermissionError" in script_error(call(hostile, name))
    still_serving(hostile)


LIST_ROOT = service("list-root", breach("return pd.DataFrame({'x': os.listdir('/')}),"))


def test_list_the_root_folder(hostile):
    assert "PermissionError" in script_error(call(hostile, LIST_ROOT))
    still_serving(hostile)


WRITE_MARKER = MARKER_DIR / f"scorepub-pwned-{uuid.uuid4().hex}"
WRITE_OUTSIDE = service("write-outside", breach(f"open({str(WRITE_MARKER)!r}, 'w').write('pwned')\nreturn pd.DataFrame(),"))
WRITE_HOME = service("write-home", lambda srv: breach(f"open({str(srv.home / 'x.txt')!r}, 'w').write('x')\n"
                                                      "return pd.DataFrame(),"))


def test_write_outside_the_call_folder(hostile):
    assert "PermissionError" in script_error(call(hostile, WRITE_OUTSIDE))
    assert not WRITE_MARKER.exists()
    assert "PermissionError" in script_error(call(hostile, WRITE_HOME)) and not (hostile.home / "x.txt").exists()
    still_serving(hostile)


WHERE = service("where", breach("import sys\nreturn pd.DataFrame({'prefix': [sys.prefix]}),"))
WRITE_ENVIRONMENT = service("write-environment", breach(
    "import sys, sysconfig\n"
    "for folder in (sys.prefix, sysconfig.get_paths()['purelib']):\n"
    "    try:\n"
    "        open(os.path.join(folder, 'pwned.py'), 'w').write('x')\n"
    "    except PermissionError:\n"
    "        pass\n"
    "    else:\n"
    "        raise AssertionError('wrote into ' + folder)\n"
    "return pd.DataFrame({'refused': [True]}),"))


def test_the_script_runs_in_its_environment_and_cannot_change_it(hostile):
    r = call(hostile, WHERE)
    assert r.status_code == 200, r.text
    prefix = r.json()["output1"][0]["prefix"]
    assert prefix.startswith(str(hostile.settings.env_dir)) == (hostile.requirements is not None), prefix
    r = call(hostile, WRITE_ENVIRONMENT)
    assert r.status_code == 200 and r.json()["output1"][0]["refused"] is True, r.text
    assert not list(Path(prefix).rglob("pwned.py"))
    still_serving(hostile)


WRITE_INSIDE = service("write-inside", breach(
    "open('mine.txt', 'w').write('ok')\n"
    "return pd.DataFrame({'cwd': [os.getcwd()], 'files': [sorted(os.listdir('.'))]}),"))


def test_write_inside_the_call_folder_works_and_is_gone_after(hostile):
    first = call(hostile, WRITE_INSIDE).json()["output1"][0]
    assert first["files"] == "['Script Bundle', 'mine.txt']"
    assert not Path(first["cwd"]).exists()


# -- network -------------------------------------------------------------------------------------

TCP = service("tcp", lambda srv: breach(f"s = socket.create_connection(('127.0.0.1', {srv.port}), timeout=2)\n"
                                         "return pd.DataFrame(),", "import socket"))


def test_tcp_connect_to_the_servers_own_port(hostile):
    message = script_error(call(hostile, TCP))
    assert "PermissionError" in message or "Network is unreachable" in message
    still_serving(hostile)


UDP = service("udp", breach("s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                            "s.sendto(b'x', ('127.0.0.1', 53))\nreturn pd.DataFrame(),", "import socket"))


def test_udp_send(hostile):
    assert "PermissionError" in script_error(call(hostile, UDP))
    still_serving(hostile)


UNIX_PATH = Path("/tmp") / f"scorepub-test-{uuid.uuid4().hex[:8]}.sock"
UNIX = service("unix", breach(f"s = socket.socket(socket.AF_UNIX)\ns.connect({str(UNIX_PATH)!r})\n"
                              "return pd.DataFrame(),", "import socket"))


def test_connect_to_a_pathname_unix_socket(hostile, tmp_path):
    import socket

    path = UNIX_PATH
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    os.chmod(path, 0o777)
    listener.listen(1)
    listener.settimeout(0.5)
    try:
        assert "PermissionError" in script_error(call(hostile, UNIX))
        with pytest.raises(socket.timeout):
            listener.accept()  # nobody got through
    finally:
        listener.close()
        path.unlink()
    still_serving(hostile)


# -- processes -------------------------------------------------------------------------------------

FORK_BOMB = service("fork-bomb", breach("while True:\n    os.fork()"))


def test_fork_bomb(hostile):
    assert "PermissionError" in script_error(call(hostile, FORK_BOMB))
    still_serving(hostile)


TOUCH_MARKER = MARKER_DIR / f"scorepub-pwned-{uuid.uuid4().hex}"
SUBPROCESS = service("subprocess", breach(f"subprocess.run(['touch', {str(TOUCH_MARKER)!r}])\nreturn pd.DataFrame(),",
                                          "import subprocess"))
OS_SYSTEM = service("os-system", breach(f"code = os.system('touch {TOUCH_MARKER}')\n"
                                        "return pd.DataFrame({'code': [code]}),"))


def test_subprocess_and_os_system(hostile):
    assert "PermissionError" in script_error(call(hostile, SUBPROCESS))
    r = call(hostile, OS_SYSTEM)
    assert r.status_code == 200 and r.json()["output1"][0]["code"] != 0
    assert not TOUCH_MARKER.exists()
    still_serving(hostile)


KILL_PARENT = service("kill-parent", lambda srv: breach(  # srv.proc: the server's own process
    f"results = []\nfor pid in (os.getppid(), 1, {srv.proc.pid}, -1):\n"
    "    try:\n        os.kill(pid, 9)\n        results.append('killed')\n"
    "    except OSError as exc:\n        results.append(type(exc).__name__)\n"
    "return pd.DataFrame({'r': results}),"))


def test_kill_the_parent_and_other_processes(hostile):
    r = call(hostile, KILL_PARENT)
    assert r.status_code == 200, r.text
    assert "killed" not in [row["r"] for row in r.json()["output1"]]
    assert hostile.proc.poll() is None
    still_serving(hostile)


PTRACE = service("ptrace", breach("libc = ctypes.CDLL(None, use_errno=True)\n"
                                  "rc = libc.syscall(101, 16, 1, 0, 0)  # PTRACE_ATTACH to pid 1\n"
                                  "return pd.DataFrame({'rc': [rc], 'errno': [ctypes.get_errno()]}),",
                                  "import ctypes"))


def test_ptrace(hostile):
    row = call(hostile, PTRACE).json()["output1"][0]
    assert row["rc"] == -1 and row["errno"] == 1  # EPERM
    still_serving(hostile)


ENVIRON = service("environ", breach("return pd.DataFrame({'k': sorted(os.environ)}),"))


def test_environment_carries_no_secrets(hostile):
    keys = [row["k"] for row in call(hostile, ENVIRON).json()["output1"]]
    assert not [k for k in keys if k.startswith("SCOREPUB") or "DATABASE" in k or "PG" in k]


# -- resources -------------------------------------------------------------------------------------

LOOP = service("loop", breach("while True:\n    pass"), {**NO_INPUT, "limits": {"timeout_s": 2}})


def test_infinite_loop_is_504(hostile):
    error_of(call(hostile, LOOP), 504, "GatewayTimeout", "BackendScoreTimeout")
    still_serving(hostile)


MEMORY_BOMB = service("memory-bomb", breach("blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))"),
                      {**NO_INPUT, "limits": {"memory_mb": 256}})


def test_memory_bomb_is_413(hostile):
    error_of(call(hostile, MEMORY_BOMB), 413, "MemoryQuotaViolation")
    still_serving(hostile)


RECURSION = service("recursion", breach("def f(n):\n    return f(n + 1)\nreturn f(0),"))
# 256 MB rather than the default 1024: the frames fill memory four times sooner (about 15 s less)
RECURSION_UNLIMITED = service("recursion-unlimited", breach(
    "sys.setrecursionlimit(10**9)\ndef f(n):\n    return f(n + 1) + 1\nreturn f(0),", "import sys"),
    {**NO_INPUT, "limits": {"memory_mb": 256}})


def test_deep_recursion(hostile):
    assert "RecursionError" in script_error(call(hostile, RECURSION))
    r = call(hostile, RECURSION_UNLIMITED)
    assert r.status_code in (400, 500) and r.json()["error"]["code"] in ("ModuleExecutionError", "InternalError")
    still_serving(hostile)


SEGFAULT = service("segfault", breach("ctypes.string_at(0)\nreturn pd.DataFrame(),", "import ctypes"))


def test_segfault_through_ctypes_is_500_naming_the_signal(hostile):
    r = call(hostile, SEGFAULT)
    assert "SIGSEGV" in error_of(r, 500, "InternalError")["message"]
    still_serving(hostile)


HUGE_OUTPUT = service("huge-output", breach("import numpy as np\nreturn pd.DataFrame(np.zeros((10_000_000, 10))),"),
                      {**NO_INPUT, "limits": {"memory_mb": 2048, "timeout_s": 60}})


def test_huge_output_is_refused_clearly(hostile):
    r = call(hostile, HUGE_OUTPUT)
    assert (r.status_code, r.json()["error"]["code"]) in ((413, "MemoryQuotaViolation"), (400, "ModuleExecutionError"))
    if r.status_code == 400:
        assert r.json()["error"]["details"][0]["code"] == "OutputTooLarge"
    still_serving(hostile)


NO_RETURN = service("no-return", "def azureml_main():\n    pass\n")


def test_a_script_that_returns_nothing(hostile):
    assert "returned None" in script_error(call(hostile, NO_RETURN))


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


PATCHER_SERVICE = service("patcher", PATCHER, {**ONE_ROW, "isolation": "per-call"})


def test_monkeypatching_in_a_per_call_service_is_not_seen_by_the_next_call(hostile):
    for _ in range(3):
        seen = call(hostile, PATCHER_SERVICE, [{"n": 1}]).json()["output1"][0]["seen"]
        assert seen == "{'print': 'print', 'concat': 'concat', 'marker': None}"


def test_readyz_reports_every_layer_active(hostile):
    report = hostile.get("/readyz").json()
    sandbox = report["sandbox"]
    assert sandbox["mode"] == "strict" and sandbox["missing"] == []
    for layer in ("fds", "pdeathsig", "no_new_privs", "rlimits", "namespaces", "disk", "uid", "landlock", "seccomp"):
        assert sandbox["layers"][layer]["active"] is True, layer
    assert sandbox["landlock_abi"] >= 4


TRICKLE = service("trickle", breach("import time\nwhile True:\n    for fd in range(3, 64):\n        try:\n"
                                    "            os.write(fd, b'\\0')\n        except OSError:\n            pass\n"
                                    "    time.sleep(0.5)"), {**NO_INPUT, "limits": {"timeout_s": 2}})


def test_trickling_bytes_cannot_stretch_the_deadline(hostile):
    """Writing to the worker's own socket a byte at a time must not keep the call alive."""
    started = time.monotonic()
    r = call(hostile, TRICKLE)
    assert time.monotonic() - started < 6
    assert r.status_code in (504, 500), r.text  # a deadline, or a broken protocol: never a hang
    still_serving(hostile)


UNENCODABLE = service("unencodable", breach("return pd.DataFrame({'big': [10**30], 's': ['\\ud800']}),"))


def test_unencodable_output_is_a_clear_error(hostile):
    r = call(hostile, UNENCODABLE)
    assert r.status_code == 200, r.text
    row = r.json()["output1"][0]
    assert row["big"] == str(10**30) and row["s"] == "?"
    still_serving(hostile)


# -- resources shared with the host (issue 15) --------------------------------------------------

SYSV = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "IPC_CREAT, IPC_EXCL = 0o1000, 0o2000\n")
SHM_KEY, MSG_KEY = 0x5C0FE, 0x5C0FF
IPC_CREATE = service("ipc-create", breach(
    SYSV + f"shm = libc.shmget({SHM_KEY}, 4096, IPC_CREAT | IPC_EXCL | 0o666)\n"
    f"msg = libc.msgget({MSG_KEY}, IPC_CREAT | IPC_EXCL | 0o666)\n"
    "return pd.DataFrame({'shm': [shm], 'msg': [msg]}),"), {**NO_INPUT, "isolation": "per-call"})
IPC_LOOK = service("ipc-look", breach(
    SYSV + f"return pd.DataFrame({{'shm': [libc.shmget({SHM_KEY}, 0, 0)], 'msg': [libc.msgget({MSG_KEY}, 0)]}}),"))


def host_ipc_keys() -> set[int]:
    keys = set()
    for kind in ("shm", "msg", "sem"):
        lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        keys.update(int(line.split()[0]) for line in lines if line.strip())
    return keys


def test_sysv_ipc_is_private_to_a_template_and_to_a_per_call_call(hostile):
    first = call(hostile, IPC_CREATE)
    assert first.status_code == 200, first.text
    row = first.json()["output1"][0]
    assert row["shm"] >= 0 and row["msg"] >= 0  # SysV IPC works inside...
    assert not {SHM_KEY, MSG_KEY} & host_ipc_keys()  # ...in a namespace of its own, not the host's
    other = call(hostile, IPC_LOOK).json()["output1"][0]
    assert other == {"shm": -1, "msg": -1}  # another service does not see them
    again = call(hostile, IPC_CREATE).json()["output1"][0]
    assert again["shm"] >= 0 and again["msg"] >= 0  # the next per-call worker starts with none (IPC_EXCL)
    still_serving(hostile)


MEMFD = service("memfd", breach("fd = os.memfd_create('x')\nos.write(fd, b'x' * (64 << 20))\n"
                                "return pd.DataFrame({'fd': [fd]}),"))


def test_memfd_create_is_refused(hostile):
    """Anonymous memory files are not counted by RLIMIT_AS (memory_mb): seccomp refuses them."""
    message = script_error(call(hostile, MEMFD))
    assert "PermissionError" in message or "Operation not permitted" in message, message
    still_serving(hostile)


MARKER = f"scorepub-fd-marker-{uuid.uuid4().hex}"
WRITE_FDS = service("write-fds", breach(
    f"written = []\nfor fd in range(64):\n"
    f"    try:\n        if stat.S_ISSOCK(os.fstat(fd).st_mode):\n            continue  # its own socket: the call's\n"
    f"        os.write(fd, b'{MARKER}\\n')\n        written.append(fd)\n    except OSError:\n        pass\n"
    "ttys = [fd for fd in range(64) if os.isatty(fd)]\n"
    "return pd.DataFrame({'written': [str(written)], 'ttys': [str(ttys)]}),", "import os, stat"))


def test_a_script_writes_nothing_into_the_servers_log(hostile):
    """Only the call's own output file and socket: not the server's stdout/stderr (its log)."""
    r = call(hostile, WRITE_FDS)
    assert r.status_code == 200, r.text
    time.sleep(0.5)
    assert MARKER not in hostile.log.read_text(errors="replace")
    still_serving(hostile)


FILL_DISK = service("fill-disk", breach(
    "chunk = b'x' * (1 << 20)\nwritten = 0\nos.mkdir('locked')\n"
    "try:\n    with open('big', 'wb') as f:\n        while written < (4 << 30):\n"
    "            f.write(chunk)\n            f.flush()\n            written += len(chunk)\n"
    "except OSError as exc:\n    error = exc.strerror\nelse:\n    error = None\n"
    "os.chmod('locked', 0)\n"
    "return pd.DataFrame({'written_mb': [written >> 20], 'error': [error]}),"))


def test_filling_the_disk_fills_only_the_templates_own(hostile):
    """A script writing until the disk is full meets its template's private tmpfs (DISK_MB),
    not the server's disk; a folder it made mode 000 does not outlive the template either."""
    import shutil

    before = shutil.disk_usage(hostile.settings.run_dir).free
    r = call(hostile, FILL_DISK)
    assert r.status_code == 200, r.text
    row = r.json()["output1"][0]
    assert row["error"] == "No space left on device" and row["written_mb"] <= DISK_MB, row
    assert shutil.disk_usage(hostile.settings.run_dir).free > before - (8 << 20)  # the host's disk: untouched
    still_serving(hostile)
