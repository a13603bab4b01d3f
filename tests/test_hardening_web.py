"""The web process's findings of issue 15, each as the attack that reproduced it: chunked bodies
over the limit (#10, a real gunicorn), the login lock-out race (#13), logout and ``next`` (#20),
the admin page's headers and live badge (#24) and the public OpenAPI document's cost (#16)."""
from __future__ import annotations

import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from conftest import App, cli_env, error_of
from serving.admin.auth import hash_password

USER, PASSWORD = "admin", "correct horse battery"


# -- #10: chunked bodies count against SCOREPUB_MAX_BODY_BYTES ---------------------------------

def _chunked(server, path: str, headers: dict, body: bytes, chunk: int = 64 * 1024) -> tuple[int, dict, bytes]:
    """POST ``body`` with ``Transfer-Encoding: chunked`` on a raw socket; the whole body is sent
    before the answer is read (what a client that does not watch for an early answer does)."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        try:
            sock.sendall(head.encode())
            for i in range(0, len(body), chunk):
                part = body[i:i + chunk]
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered (413) and closed before the rest was sent: read that answer
        raw = b""
        while b"\r\n\r\n" not in raw:
            data = sock.recv(65536)
            assert data, f"the connection closed before an answer: {raw!r}"
            raw += data
        top, _, rest = raw.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        found = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        if "content-length" in found:
            while len(rest) < int(found["content-length"]):
                data = sock.recv(65536)
                if not data:
                    break
                rest += data
        else:
            while data := sock.recv(65536):
                rest += data
        return status, found, rest


class _Json:
    def __init__(self, status, headers, body):
        self.status_code, self.body = status, body
        self.headers = {"Content-Type": headers.get("content-type", "")}
        self.text = body.decode(errors="replace")

    def json(self):
        return orjson.loads(self.body)


def test_a_chunked_csv_body_over_the_limit_is_413_not_cut(server):
    limit = server.settings.max_body_bytes
    body = b"name\n" + b"x" * 20 + b"\n"
    body += (b"Ada Lovelace\n" * ((limit + 200_000) // 13))
    assert len(body) > limit
    status, headers, answer = _chunked(server, "/services/hello-bundle/score",
                                 {"Content-Type": "text/csv", "Accept": "application/json",
                                  "Authorization": f"Bearer {server.keys['hello-bundle']['primary']}"}, body)
    error_of(_Json(status, headers, answer), 413, "RequestTooLarge", "RequestBodyTooLarge")


def test_a_chunked_json_body_over_the_limit_is_413_not_a_parse_error(server):
    limit = server.settings.max_body_bytes
    rows = [{"name": "Ada Lovelace"}] * ((limit + 100_000) // 24)
    body = orjson.dumps(rows)
    assert len(body) > limit
    status, headers, answer = _chunked(server, "/services/hello-bundle/score",
                                 {"Content-Type": "application/json",
                                  "Authorization": f"Bearer {server.keys['hello-bundle']['primary']}"}, body)
    error_of(_Json(status, headers, answer), 413, "RequestTooLarge", "RequestBodyTooLarge")


def test_a_complete_chunked_body_under_the_limit_is_scored(server):
    rows = [{"name": f"n{i}" * 50} for i in range(900)]  # under the row limit (1000), many chunks
    body = orjson.dumps(rows)
    status, headers, answer = _chunked(server, "/services/hello-bundle/score",
                                 {"Content-Type": "application/json",
                                  "Authorization": f"Bearer {server.keys['hello-bundle']['primary']}"}, body,
                                 chunk=7000)
    assert status == 200, answer[:500]
    out = orjson.loads(answer)
    assert len(out["output1"] if isinstance(out, dict) else out) == 900


def test_a_chunked_body_exactly_at_the_limit_is_not_refused(server):
    """The limit is inclusive, as for a Content-Length body: only a byte past it is refused."""
    limit = server.settings.max_body_bytes
    head = b"name\n"
    body = head + b"a" * (limit - len(head) - 1) + b"\n"
    assert len(body) == limit
    status, headers, answer = _chunked(server, "/services/hello-bundle/score",
                                 {"Content-Type": "text/csv",
                                  "Authorization": f"Bearer {server.keys['hello-bundle']['primary']}"}, body)
    assert status != 413, answer[:300]


# -- the admin app ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def admin_app(tmp_path_factory):
    home = tmp_path_factory.mktemp("hardening-web-home")
    app = App(home, cli_env(home, SCOREPUB_POOL_SIZE="1", SCOREPUB_LOGIN_MAX_FAILURES="5"))
    app.publish_examples(("hello-bundle",))
    app.start()
    app.registry.create_user(USER, hash_password(PASSWORD))
    yield app
    app.stop()


def _token(app, client) -> str:
    page = app.get("/admin/login", client=client).text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _login(app, client, name=USER, password=PASSWORD, next_=None):
    data = {"csrf_token": _token(app, client), "name": name, "password": password}
    if next_ is not None:
        data["next"] = next_
    return app.post("/admin/login", client=client, data=data)


# -- #13: the lock-out counts before it checks, atomically ---------------------------------------

def test_concurrent_wrong_passwords_check_at_most_the_limit(admin_app, monkeypatch):
    from serving.admin import auth

    checked, lock = [], threading.Lock()
    real = auth.check_password_hash

    def counting(stored, password):
        with lock:
            checked.append(password)
        time.sleep(0.05)  # a slow hash widens the window between the count and the record
        return real(stored, password)

    monkeypatch.setattr(auth, "check_password_hash", counting)
    clients = [admin_app.client() for _ in range(48)]
    tokens = [_token(admin_app, c) for c in clients]
    barrier = threading.Barrier(len(clients))

    def guess(i):
        barrier.wait()
        return admin_app.post("/admin/login", client=clients[i],
                              data={"csrf_token": tokens[i], "name": "racer", "password": f"guess{i}"}).status_code

    with ThreadPoolExecutor(len(clients)) as pool:
        statuses = list(pool.map(guess, range(len(clients))))
    assert len(checked) <= 5, f"{len(checked)} passwords checked with a limit of 5"
    assert statuses.count(401) == len(checked) and statuses.count(429) == len(clients) - len(checked)


def test_the_right_password_is_not_counted_as_a_failure(admin_app):
    admin_app.registry.create_user("counted", hash_password(PASSWORD))
    for _ in range(8):  # more than the limit of 5: each right one is forgiven
        r = _login(admin_app, admin_app.client(), "counted")
        assert r.status_code == 302, r.text


def test_claim_login_attempt_is_atomic_on_each_database(registry):
    import datetime as dt

    from publisher.registry import now

    since = now() - dt.timedelta(minutes=15)
    with ThreadPoolExecutor(16) as pool:
        claims = list(pool.map(lambda _: registry.claim_login_attempt("concurrent", since, 5), range(40)))
    granted = [c for c in claims if c is not None]
    assert len(granted) == 5 and len(set(granted)) == 5
    registry.forgive_login_attempt(granted[0])
    assert registry.claim_login_attempt("concurrent", since, 5) is not None
    assert registry.claim_login_attempt("concurrent", since, 5) is None


# -- #20: logout revokes the session; CR/LF in next ---------------------------------------------

def _cookie(client) -> str:
    return client.get_cookie("scorepub_session").value


def test_a_copied_session_cookie_stops_working_after_logout(admin_app):
    browser = admin_app.client()
    assert _login(admin_app, browser).status_code == 302
    copy = admin_app.client()
    copy.set_cookie("scorepub_session", _cookie(browser))
    assert admin_app.get("/admin/", client=copy).status_code == 200  # the stolen cookie works...
    page = admin_app.get("/admin/", client=browser).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert admin_app.post("/admin/logout", client=browser, data={"csrf_token": token}).status_code == 302
    r = admin_app.get("/admin/", client=copy)  # ...until its owner logs out
    assert r.status_code == 302 and "/admin/login" in r.headers["Location"]
    assert _login(admin_app, admin_app.client()).status_code == 302  # and a new login works


@pytest.mark.parametrize("target", ["/admin/\r\nSet-Cookie: evil=1", "/admin/\nLocation: https://evil.example",
                                    "/admin\\@evil.example", "/admin/%0d%0aX: y"])
def test_a_control_character_in_next_is_never_a_500(admin_app, target):
    r = _login(admin_app, admin_app.client(), next_=target)
    assert r.status_code == 302, r.text
    location = r.headers["Location"]
    assert "\r" not in location and "\n" not in location and "evil" not in r.headers.get("Set-Cookie", "")
    assert location.startswith("/admin")


# -- #24: CSP and framing; the live badge of a script that fails to load ------------------------

def _csp(response) -> dict:
    policy = response.headers["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d}


@pytest.mark.parametrize("path", ["/admin/login", "/admin/", "/admin/publish", "/admin/no-such-page"])
def test_admin_pages_forbid_framing_and_foreign_scripts(admin_app, path):
    client = admin_app.client()
    _login(admin_app, client)
    r = admin_app.get(path, client=client)
    assert r.headers["X-Frame-Options"] == "DENY"
    csp = _csp(r)
    assert csp["frame-ancestors"] == ["'none'"] and csp["default-src"] == ["'none'"]
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    nonce = next(s for s in csp["script-src"] if s.startswith("'nonce-"))[7:-1]
    for tag in re.findall(r"<script[^>]*>", r.text):  # every inline script carries this response's nonce
        assert f'nonce="{nonce}"' in tag, tag
    if path == "/admin/publish":
        assert '<script nonce="' in r.text


def test_each_response_has_its_own_nonce(admin_app):
    client = admin_app.client()
    _login(admin_app, client)
    a, b = (_csp(admin_app.get("/admin/publish", client=client))["script-src"] for _ in range(2))
    assert a != b


def test_the_scoring_api_has_no_admin_headers(admin_app):
    assert "Content-Security-Policy" not in admin_app.get("/healthz").headers


def test_a_live_version_whose_script_fails_to_load_has_no_green_badge(admin_app, tmp_path):
    folder = tmp_path / "broken-load"
    folder.mkdir()
    folder.joinpath("score.py").write_text("raise RuntimeError('no model file')\n\n"
                                           "def azureml_main(df1=None):\n    return df1\n")
    folder.joinpath("schema.json").write_bytes(orjson.dumps(
        {"inputs": {"input1": {"columns": [{"name": "x", "type": "integer"}]}}}))
    admin_app.publish(folder, "broken-load", promote=True)
    r = admin_app.score("broken-load", [{"x": 1}])
    assert r.status_code >= 400
    client = admin_app.client()
    _login(admin_app, client)
    deadline = time.monotonic() + 30
    while True:
        page = admin_app.get("/admin/services/broken-load", client=client).text
        if "fails to load" in page or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert "fails to load" in page
    assert not re.search(r'class="badge live-state live"', page)
    listing = admin_app.get("/admin/", client=client).text
    row = listing[listing.index("broken-load"):]
    row = row[:row.index("</tr>")]
    assert "fails to load" in row and 'badge live-state live"' not in row
    healthy = admin_app.get("/admin/services/hello-bundle", client=client).text
    assert "fails to load" not in healthy


# -- #16: the public OpenAPI document is built once per version, with a bounded example -----------

def test_swagger_json_is_cached_and_its_example_capped(admin_app, tmp_path, monkeypatch):
    from serving import openapi

    folder = tmp_path / "big-sample"
    folder.mkdir()
    folder.joinpath("score.py").write_text("def azureml_main(df1=None):\n    return df1\n")
    folder.joinpath("schema.json").write_bytes(orjson.dumps(
        {"inputs": {"input1": {"columns": [{"name": "text", "type": "string"}]}}}))
    rows = [{"text": "x" * 200} for _ in range(20_000)]  # a 4 MB sample.json
    folder.joinpath("sample.json").write_bytes(orjson.dumps({"input1": rows}))
    admin_app.publish(folder, "big-sample", promote=True)
    builds = []
    real = openapi.build
    monkeypatch.setattr(openapi, "build", lambda *a, **kw: builds.append(a) or real(*a, **kw))
    sizes = []
    for _ in range(3):
        r = admin_app.get("/services/big-sample/swagger.json")
        assert r.status_code == 200
        sizes.append(len(r.content))
    assert len(builds) == 1, f"built {len(builds)} times for 3 requests"
    assert max(sizes) < 256 * 1024, sizes
    doc = orjson.loads(r.content)
    example = doc["paths"]["/services/big-sample/score"]["post"]["requestBody"]["content"]["application/json"][
        "example"]
    assert 1 <= len(example["input1"]) < len(rows) and example["input1"][0] == rows[0]


def test_capped_example_keeps_a_small_sample_whole():
    from serving.openapi import capped_example

    sample = {"input1": [{"a": 1}, {"a": 2}], "GlobalParameters": {"p": 1}}
    assert capped_example(sample) == sample
    assert capped_example({"input1": [{"a": "x" * 100_000}]}) is None
    assert capped_example(None) is None
