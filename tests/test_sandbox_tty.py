"""Workers never hold the operator's terminal (issue 15, finding 6): a server started in a
terminal hands its scripts /dev/null, not the tty (a script could read what the operator
types, or switch echo off), and no controlling terminal (/dev/tty does not open)."""
from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap

import orjson

from conftest import HOMES, ROOT

DRIVER = textwrap.dedent("""
    import dataclasses, sys
    import orjson
    from publisher import artifact
    from publisher.coercion import rows_to_table
    from publisher.schema import parse_schema
    from publisher.settings import Settings
    from serving.runtime.dispatcher import Runtime

    script = b'''
    import os
    import pandas as pd

    def azureml_main():
        ttys = [fd for fd in range(64) if os.isatty(fd)]
        try:
            os.close(os.open("/dev/tty", os.O_RDWR))
            controlling = True
        except OSError:
            controlling = False
        return pd.DataFrame({"ttys": [str(ttys)], "controlling": [controlling]}),
    '''
    doc = {"inputs": {}}
    digest, data = artifact.build("tty", {"score.py": script, "schema.json": orjson.dumps(doc)}, {}, {})
    settings = dataclasses.replace(Settings.from_env(), pool_size=1)
    runtime = Runtime(settings, {digest: data}.__getitem__)
    try:
        frame = runtime.call(digest, parse_schema(doc), [], {}).output.to_frame()
    finally:
        runtime.close()
    sys.stderr.write("RESULT " + orjson.dumps(frame.to_dict("records")).decode() + "\\n")
""")


def test_a_script_gets_no_terminal_even_from_a_server_started_in_one(tmp_path):
    home = tmp_path / "home"
    HOMES.add(home)
    primary, secondary = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREPUB_")}
    env["SCOREPUB_HOME"] = str(home)
    try:
        proc = subprocess.run([sys.executable, "-c", DRIVER], stdin=secondary, stdout=secondary, stderr=subprocess.PIPE,
                              env=env, cwd=ROOT, timeout=300)
    finally:
        os.close(secondary)
        os.close(primary)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    line = next(ln for ln in proc.stderr.decode().splitlines() if ln.startswith("RESULT "))
    (row,) = orjson.loads(line[len("RESULT "):])
    assert row == {"ttys": "[]", "controlling": False}, row
