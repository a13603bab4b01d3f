"""Publishing from the admin page with environments, through the app in this process (Flask's test
client; real uv builds, real smoke calls): the streamed answer the page's script reads, the plain
form post without JavaScript, the lock field, and the environment on the service and diff pages.

One SCOREPUB_HOME for the module: a lock built by one test is there for the next."""
from __future__ import annotations

import html
import io
import re
import time

import orjson
import pytest

from publisher import artifact
from publisher.artifact_store import FolderArtifactStore
from serving.admin.auth import hash_password

from conftest import App, cli_env, sandbox_env_dir

USER, PASSWORD = "erin", "environments all the way"
NDJSON = {"Accept": "application/x-ndjson"}
SCORE = b"def azureml_main(df1=None, df2=None):\n    return df1,\n"
# its smoke call runs in the environment, where tabulate is (and must be 0.8.10)
TABULATE_SCORE = (b"import tabulate\nassert tabulate.__version__ == '0.8.10', tabulate.__version__\n\n"
                  b"def azureml_main(df1=None, df2=None):\n    return df1,\n")
SAMPLE = b'[{"x": 1}]'


@pytest.fixture(scope="module")
def envs_app(tmp_path_factory):
    home = tmp_path_factory.mktemp("admin-envs-home")
    app = App(home, cli_env(home, SCOREPUB_POOL_SIZE="1", SCOREPUB_ENV_DIR=str(sandbox_env_dir() / "admin"))).start()
    app.registry.create_user(USER, hash_password(PASSWORD))
    yield app
    app.stop()


def log_in(app):
    """A test client with a session, and the CSRF token of its publish form."""
    client = app.client()
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    r = client.post("/admin/login", data={"csrf_token": token, "name": USER, "password": PASSWORD})
    assert r.status_code == 302, r.get_data(as_text=True)
    return client, csrf_token(client.get("/admin/publish").get_data(as_text=True))


def field_error(page: str, field: str) -> str:
    return html.unescape(re.search(rf'id="error-{field}"[^>]*>([^<]*)<', page).group(1))


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture(scope="module")
def session(envs_app):
    return log_in(envs_app)


def form(token, name, files: dict, **fields) -> dict:
    """A multipart body: ``files`` maps a form field to (file name, content)."""
    data = {"name": name, "message": fields.pop("message", ""), **fields}
    if token is not None:
        data["csrf_token"] = token
    for field, (filename, content) in files.items():
        data[field] = (io.BytesIO(content), filename)
    return data


def streamed(client, data) -> tuple[object, list[tuple[float, dict]]]:
    """POST asking for the stream; each line with the time it arrived (read as it comes)."""
    started = time.monotonic()
    response = client.post("/admin/publish", data=data, headers=NDJSON, buffered=False)
    lines, pending = [], b""
    for chunk in response.response:
        pending += chunk
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            lines.append((time.monotonic() - started, orjson.loads(raw)))
    response.close()
    assert pending == b"", "every line ends with a newline"
    return response, lines


def test_the_streamed_publish_sends_each_step_before_the_result(envs_app, session):
    client, token = session
    lock = b"tabulate==0.8.10\n"  # a small environment: the lock's pins and what the runtime needs
    response, lines = streamed(client, form(token, "streamed", {
        "score_py": ("score.py", TABULATE_SCORE), "sample": ("sample.json", SAMPLE),
        "lock": ("requirements.lock", lock)}))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Accel-Buffering"] == "no"
    *progress, (last_at, last) = lines
    assert last["event"] == "published", last
    stages = [e["stage"] for _, e in progress if e["event"] == "progress"]
    assert stages[0] == "validate" and stages[-1] == "smoke"
    assert [s for s in ("resolve", "install", "check", "done") if s in stages] == ["resolve", "install", "check", "done"]
    steps = [e["step"] for _, e in progress if e["event"] == "progress"]
    assert steps == sorted(steps) and all(e["steps"] == 7 for _, e in progress if e["event"] == "progress")
    install = next(e for _, e in progress if e.get("stage") == "install")
    assert re.match(r"installing \d+ packages into [0-9a-f]{12}$", install["detail"])
    # the first lines went out while the environment was still being built
    first_at = progress[0][0]
    done_at = next(at for at, e in progress if e.get("stage") == "done")
    assert done_at - first_at > 0.5 and last_at > done_at
    env = last["environment"]
    assert env["built"] is True and env["packages"] >= 4 and env["size_mb"] > 1 and env["build_seconds"] > 0
    assert last["version"] == 1 and last["created"] and last["url"] == "/admin/services/streamed"
    page = last["html"]
    assert 'id="published"' in page and "primary: " in page and "shown only this once" in page
    assert env["id"][:12] in page and f"{env['size_mb']:.1f} MB" in page and "built in" in page
    assert "installing" in page  # the steps, on the result page too
    # the version's frozen lock: resolved from the given one, with its tabulate
    versions = envs_app.registry.versions("streamed")
    store = FolderArtifactStore(envs_app.settings.artifact_dir)
    art = artifact.load(store.get(versions[0].digest), versions[0].digest)
    assert b"tabulate==0.8.10" in art.lock and art.lock.startswith(b"# scorepub requirements.lock")

    page = client.get("/admin/services/streamed").get_data(as_text=True)
    cell = re.search(r'<td class="environment">(.*?)</td>', page, re.S).group(1)
    assert env["id"][:12] in cell and "Python 3." in cell
    assert re.search(r"pandas [0-9.]+, numpy [0-9.]+", cell) and "<details" in cell and "<li>tabulate 0.8.10</li>" in cell


def test_the_plain_form_post_builds_the_environment_of_a_requirements_txt(envs_app, session):
    client, token = session
    schema = b'{"inputs": {"input1": {"columns": [{"name": "x", "type": "integer"}]}}}'
    files = {"score_py": ("score.py", SCORE), "schema": ("schema.json", schema)}  # no sample: no smoke call
    first = client.post("/admin/publish", data=form(token, "plain", files))  # the default environment
    assert first.status_code == 200 and "<strong>default</strong>" in first.get_data(as_text=True)
    started = time.monotonic()
    r = client.post("/admin/publish", data=form(token, "plain", {
        **files, "requirements": ("requirements.txt", b"tabulate==0.9.0\n")}, message="with tabulate"))
    seconds = time.monotonic() - started
    page = r.get_data(as_text=True)
    assert r.status_code == 200, page
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Content-Type"].startswith("text/html")
    assert "Published: plain v2" in page
    env_id = re.search(r'<strong class="mono" title="([0-9a-f]{64})">', page).group(1)
    size = float(re.search(r'id="environment-size">([0-9.]+) MB', page).group(1))
    build = float(re.search(r'id="environment-build">built in ([0-9.]+) s', page).group(1))
    assert size > 50 and 0 < build < seconds  # the classic package set is in it
    assert re.search(r'id="publish-seconds">Publishing took [0-9.]+ s', page)
    assert "resolving 1 requirement(s) with the classic package set" in page and "checking that numpy" in page

    page = client.get("/admin/services/plain").get_data(as_text=True)
    cells = re.findall(r'<td class="environment">(.*?)</td>', page, re.S)
    assert len(cells) == 2 and env_id[:12] in cells[0] and "default" in cells[1]
    assert "<li>tabulate 0.9.0</li>" in cells[0] and "tabulate" not in cells[1]
    assert re.search(r"scikit-learn [0-9.]+", cells[0]) and re.search(r"scikit-learn [0-9.]+", cells[1])

    diff = client.get("/admin/services/plain/diff?a=1&b=2").get_data(as_text=True)
    packages = diff.split("<h3>Packages</h3>", 1)[1].split("<h3>", 1)[0]
    assert f"environment default -&gt; {env_id[:12]}" in packages and "tabulate 0.9.0 added" in packages

    # the same requirements again, for another service: the environment is there, no build
    started = time.monotonic()
    again = client.post("/admin/publish", data=form(token, "plain-again", {
        **files, "requirements": ("requirements.txt", b"tabulate==0.9.0\n")}))
    assert again.status_code == 200 and "already built" in again.get_data(as_text=True)
    assert env_id[:12] in again.get_data(as_text=True) and time.monotonic() - started < 10


def test_field_errors_come_as_the_last_line_with_the_messages_of_the_plain_post(session):
    client, token = session
    bad_schema = {"score_py": ("score.py", SCORE), "schema": ("schema.json", b'{"inputs": {"input1": {"colums": []}}}')}
    response, lines = streamed(client, form(token, "broken", bad_schema))
    assert response.status_code == 200
    assert [e["event"] for _, e in lines] == ["progress", "invalid"] and lines[0][1]["stage"] == "validate"
    errors = lines[-1][1]["errors"]
    assert list(errors) == ["schema"] and "inputs.input1.colums" in errors["schema"]
    plain = client.post("/admin/publish", data=form(token, "broken", bad_schema))
    assert plain.status_code == 400
    assert field_error(plain.get_data(as_text=True), "schema") == errors["schema"]

    # refused before anything runs: one line, 400
    response, lines = streamed(client, form(token, "", {}))
    assert response.status_code == 400 and len(lines) == 1
    assert lines[0][1] == {"event": "invalid", "errors": {"name": "A service name is required.",
                                                          "score_py": "score.py is required."}}

    # a requirement that does not resolve: after the resolve step, next to requirements.txt
    response, lines = streamed(client, form(token, "unresolvable", {
        "score_py": ("score.py", SCORE), "sample": ("sample.json", SAMPLE),
        "requirements": ("requirements.txt", b"scorepub-no-such-package-anywhere==1.0\n")}))
    assert [e.get("stage") for _, e in lines[:-1]] == ["validate", "resolve"]
    errors = lines[-1][1]["errors"]
    assert list(errors) == ["requirements"] and "scorepub-no-such-package-anywhere" in errors["requirements"]


def test_the_lock_field_takes_the_three_lock_names_and_its_errors_stay_next_to_it(session):
    client, token = session
    files = {"score_py": ("score.py", SCORE), "sample": ("sample.json", SAMPLE)}
    response, lines = streamed(client, form(token, "locked", {**files, "lock": ("deps.txt", b"tabulate==0.9.0\n")}))
    assert response.status_code == 400
    assert lines[-1][1]["errors"] == {"lock": "deps.txt: a lock file is named requirements.lock, pylock.toml or uv.lock"}
    response, lines = streamed(client, form(token, "locked", {**files, "lock": ("requirements.lock", b"tabulate>=0.9\n")}))
    errors = lines[-1][1]["errors"]
    assert list(errors) == ["lock"] and "every line must pin one version" in errors["lock"]
    plain = client.post("/admin/publish", data=form(token, "locked", {**files, "lock": ("pylock.toml", b"packages = [")}))
    assert plain.status_code == 400
    assert field_error(plain.get_data(as_text=True), "lock").startswith("pylock.toml: not valid TOML")


def test_a_publish_without_the_csrf_token_is_refused(envs_app, session):
    client, _token = session
    files = {"score_py": ("score.py", SCORE), "sample": ("sample.json", SAMPLE)}
    for headers in (NDJSON, {}):
        r = client.post("/admin/publish", data=form(None, "no-token", files), headers=headers)
        assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
    r = client.post("/admin/publish", data=form("not-the-token", "no-token", files), headers=NDJSON)
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
    assert "no-token" not in [s.name for s in envs_app.registry.services()]
    # the token may come as a header instead of a form field (what the page's script also sends)
    _client, token = session
    r = client.post("/admin/publish", data=form(None, "", {}), headers={**NDJSON, "X-CSRFToken": token})
    assert r.status_code == 400 and r.headers["Content-Type"] == "application/x-ndjson"


def test_a_publish_that_breaks_ends_the_stream_with_an_error_line(tmp_path):
    """Not a refusal but a failure (here SCOREPUB_ENV_DIR is a file): the stream still ends with
    a line, and the plain post with the error page."""
    not_a_folder = tmp_path / "envs-is-a-file"
    not_a_folder.write_text("")
    home = tmp_path / "broken-home"
    broken = App(home, cli_env(home, SCOREPUB_POOL_SIZE="1", SCOREPUB_ENV_DIR=str(not_a_folder))).start()
    broken.registry.create_user(USER, hash_password(PASSWORD))
    try:
        client, token = log_in(broken)
        files = {"score_py": ("score.py", SCORE), "sample": ("sample.json", SAMPLE),
                 "requirements": ("requirements.txt", b"tabulate==0.9.0\n")}
        response, lines = streamed(client, form(token, "broken-env", files))
        assert response.status_code == 200
        last = lines[-1][1]
        assert last["event"] == "error" and re.fullmatch(r"Something went wrong \(request id [0-9a-f]{32}\)\.", last["message"])
        assert all(e["event"] == "progress" for _, e in lines[:-1])
        plain = client.post("/admin/publish", data=form(token, "broken-env", files))
        assert plain.status_code == 500 and "Something went wrong" in plain.get_data(as_text=True)
    finally:
        broken.stop()
