"""The admin page in a real browser (Debian's Chromium driven by Playwright) against a real server.

What needs no browser (the login rate limit) is in tests/test_admin_http.py, in process."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import requests

from conftest import EXAMPLES, ROOT, Server, cli, cli_env

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "test-output" / "admin"
USER, PASSWORD = "alice", "correct horse battery"


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("admin-home")
    env = cli_env(home, SCOREPUB_WEB_WORKERS="1", SCOREPUB_POOL_SIZE="1", SCOREPUB_LOGIN_MAX_FAILURES="3")
    srv = Server(home, env)
    srv.publish_examples(("hello-bundle", "feature-importance", "expression-evaluator"))
    cli("admin", "create-user", USER, "--password-stdin", env=env, input=PASSWORD + "\n")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                    "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def new_context(browser, admin_server, **kw):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=admin_server.url, **kw)
    context.set_default_timeout(60_000)  # a busy machine: a slow page is not a broken one
    return context


@pytest.fixture(scope="module")
def logged_in(browser, admin_server):
    """The cookies of one real login through the form, reused by the tests that only need to be
    logged in (each login checks the password hash: about a second of the server's time)."""
    context = new_context(browser, admin_server)
    login(context.new_page())
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture
def page(request, browser, admin_server):
    """A fresh browser context, logged in (a page that needs a login would redirect to the login
    form otherwise); with ``@pytest.mark.anonymous``, one with no session (to test logging in)."""
    if request.node.get_closest_marker("anonymous"):
        context = new_context(browser, admin_server)
        page = context.new_page()
    else:
        context = new_context(browser, admin_server, storage_state=request.getfixturevalue("logged_in"))
        page = context.new_page()
    yield page
    context.close()


def login(page) -> None:
    page.goto("/admin/login")
    page.fill("#name", USER)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/")


def shot(page, name: str) -> None:
    """Each page at a desktop and a phone width; the test fails if the page scrolls sideways."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{name} at {width}px is {overflow}px too wide"
    page.set_viewport_size({"width": 1280, "height": 900})


def confirm(page) -> None:
    page.wait_for_selector("text=Are you sure?")
    page.click("main form button[type=submit]")


@pytest.mark.anonymous
def test_anonymous_requests_go_to_the_login_page(page, admin_server):
    for path in ("/admin/", "/admin/services/hello-bundle", "/admin/publish", "/admin/services/hello-bundle/console"):
        page.goto(path)
        assert re.search(r"/admin/login", page.url), path
    shot(page, "login")
    r = requests.post(f"{admin_server.url}/admin/services/hello-bundle/action", data={"action": "rollback"},
                      allow_redirects=False, timeout=60)
    assert r.status_code in (302, 400)  # no session: redirected, or refused for want of a CSRF token


@pytest.mark.anonymous
def test_login_wrong_password_then_right(page):
    page.goto("/admin/login")
    page.fill("#name", USER)
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert page.locator(".flash.error").inner_text().startswith("Wrong user name or password")
    login(page)
    assert page.locator("h1").inner_text() == "Services"
    assert page.locator("text=feature-importance").count() >= 1
    shot(page, "services")


@pytest.mark.anonymous
def test_session_cookie_is_httponly_and_samesite(page, admin_server):
    login(page)
    cookie = next(c for c in page.context.cookies() if c["name"] == "scorepub_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"


def test_a_form_post_without_the_csrf_token_is_refused(page, admin_server):
    response = page.request.post(f"{admin_server.url}/admin/services/hello-bundle/action",
                                 form={"action": "rollback", "confirmed": "yes"})
    assert response.status == 400 and "CSRF" in response.text()


def test_publish_a_new_version_by_upload(page, admin_server, tmp_path):
    page.goto("/admin/publish")
    shot(page, "publish")
    score = tmp_path / "score.py"
    score.write_text((EXAMPLES / "hello-bundle" / "score.py").read_text() + "\n# uploaded from the admin page\n")
    with_bundle = tmp_path / "bundle.zip"
    shutil.make_archive(str(with_bundle.with_suffix("")), "zip", EXAMPLES / "hello-bundle" / "bundle")
    page.fill("#name", "hello-bundle")
    page.set_input_files("#score_py", str(score))
    page.set_input_files("#bundle", str(with_bundle))
    page.set_input_files("#schema", str(EXAMPLES / "hello-bundle" / "schema.json"))
    page.set_input_files("#sample", str(EXAMPLES / "hello-bundle" / "sample.json"))
    page.fill("#message", "from the browser")
    page.click("#publish-form button[type=submit]")
    page.wait_for_selector("#published", timeout=60_000)
    assert "hello-bundle v2" in page.locator("#published").inner_text()
    shot(page, "published")
    versions = orjson.loads(cli("versions", "hello-bundle", "--json", env=admin_server.env).stdout)
    assert versions[-1]["message"] == "from the browser" and versions[-1]["published_by"] == USER


def test_publish_errors_show_next_to_their_field(page, tmp_path):
    page.goto("/admin/publish")
    bad = tmp_path / "score.py"
    bad.write_text("def azureml_main(df1):\n    return df1,,\n")
    schema = tmp_path / "schema.json"
    schema.write_text('{"inputs": {"input1": {"colums": []}}}')
    page.fill("#name", "broken-upload")
    page.set_input_files("#score_py", str(bad))
    page.set_input_files("#schema", str(schema))
    page.click("#publish-form button[type=submit]")
    page.wait_for_selector("#error-schema")
    assert "inputs.input1.colums" in page.locator("#error-schema").inner_text()
    schema.write_text((EXAMPLES / "hello-bundle" / "schema.json").read_text())
    page.set_input_files("#score_py", str(bad))
    page.set_input_files("#schema", str(schema))
    page.click("#publish-form button[type=submit]")
    page.wait_for_selector("#error-score_py")
    assert "score.py:2" in page.locator("#error-score_py").inner_text()
    shot(page, "publish-errors")


def test_the_publish_pages_script_runs_under_the_content_security_policy(page, tmp_path):
    """The CSP allows only scripts with the response's nonce: the publish page's own script must
    run (the progress line is set only by it) and the browser must report no violation."""
    console = []
    page.on("console", lambda m: console.append(m.text))
    page.goto("/admin/publish")
    bad = tmp_path / "score.py"
    bad.write_text("def azureml_main(df1):\n    return df1,,\n")
    page.fill("#name", "csp-upload")
    page.set_input_files("#score_py", str(bad))
    page.click("#publish-form button[type=submit]")
    # the progress line is written by the page's script only (the plain form post has none)
    # (a locator, not wait_for_function: its string predicate is eval'd in the page, which the CSP forbids)
    page.locator("#progress-stage", has_text=re.compile(r"^Not published")).wait_for(timeout=60_000)
    assert not [m for m in console if "Content Security Policy" in m], console


def test_console_runs_feature_importance_and_renders_the_plot(page):
    page.goto("/admin/services/feature-importance/console")
    assert '"top_n"' in page.locator("#body").input_value()
    page.fill("#body", '[{"top_n": 4}]')
    page.click("#run")
    page.wait_for_selector("#output-table")
    assert page.locator("#output-table tbody tr").count() == 4
    width = page.evaluate("document.querySelector('img.plot').naturalWidth")
    assert width > 0
    shot(page, "console")


def test_console_shows_the_error_0085_traceback(page):
    page.goto("/admin/services/expression-evaluator/console")
    page.fill("#body", '[{"nope": 1}]')
    page.click("#run")
    page.wait_for_selector("#result-error")
    assert "UnexpectedColumn" in page.locator("#result-error").inner_text() or \
        "not in the schema" in page.locator("#result-error").inner_text()
    shot(page, "console-error")


def test_promote_rollback_retire_with_confirmation_and_audit(page, admin_server, tmp_path):
    folder = tmp_path / "flip"
    shutil.copytree(EXAMPLES / "hello-bundle", folder)
    admin_server.publish(folder, "flip")
    folder.joinpath("score.py").write_text(folder.joinpath("score.py").read_text() + "\n# v2\n")
    admin_server.publish(folder, "flip")
    page.goto("/admin/services/flip")
    shot(page, "service")
    page.click("form:has(input[name=action][value=promote]) button")
    shot(page, "confirm")
    confirm(page)
    page.wait_for_selector("text=Version 2 is live.")
    admin_server.wait_for_version("flip", 2, [{"name": "x"}])
    page.click("form:has(input[name=action][value=rollback]) button")
    confirm(page)
    page.wait_for_selector("text=Rolled back to version 1.")
    admin_server.wait_for_version("flip", 1, [{"name": "x"}])
    page.click("tr:has-text('v2') form:has(input[name=action][value=retire]) button")
    confirm(page)
    page.wait_for_selector("text=Version 2 is retired.")
    assert admin_server.score("flip", [{"name": "x"}], path="versions/2/score").status_code == 410
    audit = page.locator("text=Audit log").locator("xpath=..").inner_text()
    assert "retire v2" in audit and "rollback v1" in audit and f"{USER}" in audit


def test_regenerated_key_is_shown_once_and_the_old_one_is_refused(page, admin_server):
    old = admin_server.keys["expression-evaluator"]["primary"]
    assert admin_server.score("expression-evaluator", [{"expression": "1"}], key=old).status_code == 200
    page.goto("/admin/services/expression-evaluator")
    page.click("form:has(input[name=action][value=key-primary]) button")
    confirm(page)
    new = page.locator("#new-key").inner_text().strip()
    shot(page, "new-key")
    assert admin_server.score("expression-evaluator", [{"expression": "1"}], key=old).status_code == 401
    assert admin_server.score("expression-evaluator", [{"expression": "1"}], key=new).status_code == 200
    admin_server.keys["expression-evaluator"]["primary"] = new


def test_call_log_lists_calls_and_opens_one(page, admin_server):
    admin_server.score("hello-bundle", [{"nme": "x"}])
    admin_server.score("hello-bundle", [{"name": "logged"}])
    page.goto("/admin/services/hello-bundle/calls")
    page.wait_for_timeout(800)  # the call log is written in the background, twice a second
    page.reload()
    assert page.locator("text=UnexpectedColumn").count() >= 1
    shot(page, "calls")
    page.click("tbody tr >> nth=0 >> a")
    assert "Hello, logged!" in page.locator("main").inner_text()
    shot(page, "call")


def test_diff_between_versions(page, admin_server, tmp_path):
    page.goto("/admin/services/hello-bundle/diff?a=1&b=2")
    assert "uploaded from the admin page" in page.locator("main").inner_text()
    shot(page, "diff")


def test_api_help_page_samples_work_as_pasted(page, admin_server):
    page.goto("/admin/services/hello-bundle/help")
    shot(page, "help")
    assert "swagger.json" in page.locator("main").inner_text()
    key = admin_server.keys["hello-bundle"]["primary"]
    curl = page.locator("#sample-curl").inner_text().replace("<your-api-key>", key)
    out = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=60)
    assert orjson.loads(out.stdout)["output1"][0]["greeting"] == "Hello, Ada!", out.stdout + out.stderr
    python = page.locator("#sample-python").inner_text().replace("<your-api-key>", key)
    out = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True, timeout=60)
    assert "Hello, Ada!" in out.stdout, out.stderr
    classic = page.locator("#sample-classic-curl").inner_text().replace("<your-api-key>", key)
    out = subprocess.run(["bash", "-c", classic], capture_output=True, text=True, timeout=60)
    assert orjson.loads(out.stdout)["Results"]["output1"]["value"]["Values"][0][1] == "Hello, Ada!"
    assert "fetch(" in page.locator("#sample-js").inner_text()


def test_services_page_shows_the_classic_package_versions(page):
    import importlib.metadata

    page.goto("/admin/")
    table = page.locator("table.packages")
    assert table.locator("tr", has_text="scikit-learn").inner_text().split()[-1] == importlib.metadata.version("scikit-learn")
    assert "statsmodels" in table.inner_text() and "not installed" not in table.inner_text()


def test_diff_shows_a_python_2_conversion(page, admin_server, tmp_path):
    folder = tmp_path / "py2"
    folder.mkdir()
    folder.joinpath("score.py").write_bytes(b"def azureml_main(dataframe1 = None):\n    print 'rows', len(dataframe1)\n"
                                            b"    return dataframe1,\n")
    folder.joinpath("schema.json").write_text('{"inputs": {"input1": {"columns": [{"name": "a", "type": "integer"}]}}}')
    admin_server.publish(folder, "py2-service")
    page.goto("/admin/services/py2-service/diff?a=1&b=1")
    card = page.locator(".conversion")
    assert "v1: converted from Python 2.7" in card.inner_text()
    assert "-    print 'rows', len(dataframe1)" in card.inner_text()
    assert "+    print('rows', len(dataframe1))" in card.inner_text()
    shot(page, "diff-conversion")
