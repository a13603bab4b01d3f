"""The ``scorepub`` command line (publishing.md, "The CLI").

A few cases run it as a real process (``python -m serving.cli``: the entry point, real stdout and
stderr, the exit status); the rest run the same click command in this process (conftest's ``cli``),
which saves the 2-3 s each process spends importing pandas and SQLAlchemy. Scripts (smoke calls,
``score``) still run in real sandboxed workers either way.
"""
from __future__ import annotations

import shutil
import zipfile

import orjson
import pytest

from conftest import EXAMPLES, cli, cli_env, scorepub


@pytest.fixture
def env(tmp_path):
    return cli_env(tmp_path / "home")


@pytest.fixture
def experiment(tmp_path):
    """A copy of the hello-bundle example to modify."""
    folder = tmp_path / "exp"
    shutil.copytree(EXAMPLES / "hello-bundle", folder)
    return folder


def as_json(proc):
    return orjson.loads(proc.stdout)


def one_line_error(proc) -> str:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_publish_prints_keys_once_and_json_fields(env, experiment):
    """A real process: the entry point, human and --json output on stdout."""
    human = scorepub("publish", str(experiment), "--name", "hello", "--no-smoke", env=env)  # smoke: other tests
    assert "published hello version 1" in human.stdout and "primary key: " in human.stdout
    experiment.joinpath("score.py").write_text(experiment.joinpath("score.py").read_text() + "\n# v2\n")
    out = as_json(scorepub("publish", str(experiment), "--name", "hello", "-m", "second", "--json", "--no-smoke",
                           env=env))
    assert {"service", "version", "digest", "live", "keys"} - {"keys"} <= set(out)
    assert out["service"] == "hello" and out["version"] == 2 and out["live"] is False
    assert "keys" not in out and len(out["digest"]) == 64


def test_same_folder_twice_is_a_no_op(env, experiment):
    first = as_json(cli("publish", str(experiment), "--name", "hello", "--json", env=env))
    second = cli("publish", str(experiment), "--name", "hello", env=env)
    assert "unchanged hello version 1" in second.stdout and "no new version" in second.stdout
    again = as_json(cli("publish", str(experiment), "--name", "hello", "--json", env=env))
    assert again["digest"] == first["digest"] and again["version"] == 1 and again["created"] is False
    assert len(as_json(cli("versions", "hello", "--json", env=env))) == 1


def test_broken_score_py_is_refused_in_one_line(env, experiment):
    """A real process: exactly one line on the real stderr, a non-zero exit status."""
    experiment.joinpath("score.py").write_text("import Hello\n\ndef azureml_main(df1):\n    return df1,,\n")
    line = one_line_error(scorepub("publish", str(experiment), "--name", "hello", env=env, check=False))
    assert "score.py:4" in line and "SyntaxError" in line


def test_zip_slip_bundle_is_refused_in_one_line(env, experiment):
    shutil.rmtree(experiment / "bundle")
    with zipfile.ZipFile(experiment / "bundle.zip", "w") as z:
        z.writestr("Hello.py", "def print_hello(n):\n    return n\n")
        z.writestr("../x", "escape")
    line = one_line_error(cli("publish", str(experiment), "--name", "hello", env=env, check=False))
    assert "'../x'" in line and ".." in line


def test_schema_typo_is_refused_in_one_line(env, experiment):
    doc = orjson.loads(experiment.joinpath("schema.json").read_bytes())
    doc["inputs"]["input1"]["colums"] = doc["inputs"]["input1"].pop("columns")
    experiment.joinpath("schema.json").write_bytes(orjson.dumps(doc))
    line = one_line_error(cli("publish", str(experiment), "--name", "hello", env=env, check=False))
    assert "inputs.input1.colums" in line and "unknown key" in line


def test_smoke_call_failure_is_refused_and_registers_nothing(env, experiment):
    experiment.joinpath("score.py").write_text("def azureml_main(df1):\n    return 1 / 0\n")
    line = one_line_error(cli("publish", str(experiment), "--name", "hello", env=env, check=False))
    assert "smoke call with sample.json failed" in line and "ZeroDivisionError" in line
    listed = cli("services", "--json", env=env)
    assert as_json(listed) == []
    ok = cli("publish", str(experiment), "--name", "hello", "--no-smoke", "--json", env=env)
    assert as_json(ok)["version"] == 1


def test_json_errors_are_json(env, experiment):
    proc = cli("versions", "nope", "--json", env=env, check=False)
    assert proc.returncode == 1 and "no service named 'nope'" in as_json(proc)["error"]


def test_versions_promote_rollback_retire_keys_diff_score(env, experiment, tmp_path):
    cli("publish", str(experiment), "--name", "hello", "--no-smoke", env=env)  # the smoke call: tests above
    score = experiment / "score.py"
    score.write_text(score.read_text().replace("greeting", "salutation"))
    schema = orjson.loads(experiment.joinpath("schema.json").read_bytes())
    schema["limits"] = {"timeout_s": 5}
    experiment.joinpath("schema.json").write_bytes(orjson.dumps(schema))
    v2 = as_json(cli("publish", str(experiment), "--name", "hello", "--json", "-m", "rename", "--no-smoke", env=env))
    assert v2["version"] == 2 and not v2["live"]

    assert as_json(cli("promote", "hello", "2", "--json", env=env))["live_version"] == 2
    rows = as_json(cli("versions", "hello", "--json", env=env))
    assert [(r["version"], r["live"]) for r in rows] == [(1, False), (2, True)] and rows[1]["message"] == "rename"
    services = as_json(cli("services", "--json", env=env))
    assert services[0]["name"] == "hello" and services[0]["live_version"] == 2

    sample = tmp_path / "in.json"
    sample.write_text('{"input1": [{"name": "Ada"}]}')
    scored = as_json(cli("score", "hello", str(sample), "--json", env=env))
    assert scored["output1"] == [{"name": "Ada", "salutation": "Hello, Ada!"}]
    csv_in = tmp_path / "in.csv"
    csv_in.write_text("name\nAda\n")
    old = as_json(cli("score", "hello", str(csv_in), "--version", "1", "--json", "--details", env=env))
    assert old["output1"] == [{"name": "Ada", "greeting": "Hello, Ada!"}] and "Hello, Ada!" in old["output_log"]

    d = as_json(cli("diff", "hello", "1", "2", "--json", env=env))
    assert "score.py" in d["files"] and "+" in d["files"]["score.py"] and "salutation" in d["files"]["score.py"]
    assert any("timeout_s" in item for item in d["limits"])
    assert "salutation" in cli("diff", "hello", "1", "2", env=env).stdout

    assert as_json(cli("rollback", "hello", "--json", env=env))["live_version"] == 1
    retired = as_json(cli("retire", "hello", "1", "--json", env=env))
    assert retired["retired"] and retired["live_version"] is None
    line = one_line_error(cli("promote", "hello", "1", env=env, check=False))
    assert "retired" in line
    refused = one_line_error(cli("score", "hello", str(sample), "--version", "1", env=env, check=False))
    assert "retired" in refused

    key = as_json(cli("keys", "regenerate", "hello", "secondary", "--json", env=env))
    assert key["slot"] == "secondary" and len(key["key"]) >= 40


def test_score_reports_a_bad_input_and_a_script_error(env, experiment, tmp_path):
    cli("publish", str(experiment), "--name", "hello", "--no-smoke", env=env)
    bad = tmp_path / "bad.json"
    bad.write_text('{"input1": [{"nam": "Ada"}]}')
    line = one_line_error(cli("score", "hello", str(bad), env=env, check=False))
    assert "'nam'" in line
    experiment.joinpath("score.py").write_text(
        "import pandas as pd\n\ndef azureml_main(df1):\n    if df1['name'][0] == 'boom':\n"
        "        raise ValueError('boom!')\n    return df1,\n")
    cli("publish", str(experiment), "--name", "hello", "--promote", "--no-smoke", env=env)
    bad.write_text('{"input1": [{"name": "boom"}]}')
    line = one_line_error(cli("score", "hello", str(bad), env=env, check=False))
    assert "Error 0085" in line and "ValueError: boom!" in line
