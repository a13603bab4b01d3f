"""Publishing with an environment from the admin page in a real browser (Debian's Chromium driven by
Playwright) against a real server: the progress bar while uv resolves and installs, the
environment's size on the result page, its line on the service page; and the same form without
JavaScript. A server of its own, so the environment is really built here (seconds), once."""
from __future__ import annotations

import re
import shutil
import time

import pytest

from conftest import EXAMPLES, Server, cli, cli_env, sandbox_env_dir

from .test_admin_browser import PASSWORD, SHOTS, USER, browser, logged_in, new_context, page, playwright_sync, shot

__all__ = ["browser", "logged_in", "page"]  # the fixtures, shared with test_admin_browser.py

REQUIREMENTS = "tabulate==0.9.0\n"


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("admin-envs-browser-home")
    env = cli_env(home, SCOREPUB_WEB_WORKERS="1", SCOREPUB_POOL_SIZE="1",
                  SCOREPUB_ENV_DIR=str(sandbox_env_dir() / "admin-browser"))
    srv = Server(home, env)
    cli("admin", "create-user", USER, "--password-stdin", env=env, input=PASSWORD + "\n")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def experiment(tmp_path):
    (tmp_path / "requirements.txt").write_text(REQUIREMENTS)
    return {"score_py": EXAMPLES / "hello-bundle" / "score.py",
            "schema": EXAMPLES / "hello-bundle" / "schema.json", "sample": EXAMPLES / "hello-bundle" / "sample.json",
            "requirements": tmp_path / "requirements.txt"}


def fill(page, name: str, files: dict, tmp_path) -> None:
    """The publish form with hello-bundle's files (and its bundle, zipped) and ``files``."""
    page.goto("/admin/publish")
    page.fill("#name", name)
    bundle = tmp_path / "bundle.zip"
    if not bundle.exists():
        shutil.make_archive(str(bundle.with_suffix("")), "zip", EXAMPLES / "hello-bundle" / "bundle")
    for field, path in {**files, "bundle": bundle}.items():
        page.set_input_files(f"#{field}", str(path))


def watch_progress(page, timeout_s: float = 180) -> list[tuple[float, str, int]]:
    """The bar's value, the stage line and the log's length, read every 50 ms until the result
    page replaces the form."""
    seen, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if page.locator("#published").count():
                return seen
            state = page.evaluate("""() => {
                const bar = document.getElementById('progress');
                return bar ? [bar.value, document.getElementById('progress-stage').textContent,
                              document.querySelectorAll('#publish-log li').length] : null; }""")
        except playwright_sync.Error:  # the document being replaced right now
            state = None
        if state is not None and (not seen or tuple(state) != seen[-1]):
            seen.append(tuple(state))
            if state[1].startswith("install:") and not any(st.startswith("install:") for _v, st, _n in seen[:-1]):
                SHOTS.mkdir(parents=True, exist_ok=True)  # what the page looks like while it builds
                page.screenshot(path=str(SHOTS / "publish-progress-1280.png"), full_page=True)
        page.wait_for_timeout(50)
    raise AssertionError(f"no result page within {timeout_s} s; saw {seen}")


def test_publish_with_requirements_shows_the_build_progress_then_the_environment(page, admin_server, experiment,
                                                                                 tmp_path):
    fill(page, "tabulated", experiment, tmp_path)
    page.click("#publish-form button[type=submit]")
    seen = watch_progress(page)
    values = [v for v, _stage, _n in seen]
    assert values == sorted(values), seen  # it only goes forward
    steps = {v for v in values if 20 <= v < 100}  # after the upload, before the end
    assert len(steps) >= 3, seen
    stages = " ".join(stage for _v, stage, _n in seen)
    assert "resolve: resolving 1 requirement(s)" in stages and "install: installing" in stages, seen
    assert max(n for _v, _s, n in seen) >= 4, seen  # the log's lines, one per step

    assert "Published: tabulated v1" in page.locator("#published").inner_text()
    size = page.locator("#environment-size").inner_text()
    assert re.fullmatch(r"\d+\.\d MB", size) and float(size.split()[0]) > 50, size
    assert re.fullmatch(r"built in \d+\.\d s", page.locator("#environment-build").inner_text())
    assert re.fullmatch(r"Publishing took \d+\.\d s\.", page.locator("#publish-seconds").inner_text())
    assert "primary: " in page.locator(".key").inner_text()
    env_id = page.locator("#environment strong").get_attribute("title")
    page.click("#build-log summary")
    assert re.search(r"\d\.\d s · install: installing \d+ packages", page.locator("#build-log").inner_text())
    shot(page, "published-environment")

    page.goto("/admin/services/tabulated")
    cell = page.locator("td.environment").first
    assert cell.locator(".env-id").inner_text() == env_id[:12]
    assert re.search(r"Python 3\.\d+", cell.inner_text())
    assert re.fullmatch(r"pandas [\d.]+, numpy [\d.]+, scikit-learn [\d.]+", cell.locator(".env-shown").inner_text())
    assert not cell.locator("li", has_text="tabulate").is_visible()
    cell.locator("summary").click()
    assert cell.locator("li", has_text="tabulate").inner_text() == "tabulate 0.9.0"
    shot(page, "service-environment")


def test_without_javascript_the_form_posts_and_answers_the_result_page(browser, admin_server, logged_in, experiment,
                                                                       tmp_path):
    context = new_context(browser, admin_server, storage_state=logged_in, java_script_enabled=False)
    try:
        page = context.new_page()
        fill(page, "tabulated-plain", experiment, tmp_path)
        page.click("#publish-form button[type=submit]")
        page.wait_for_selector("#published")
        assert "Published: tabulated-plain v1" in page.locator("#published").inner_text()
        assert re.fullmatch(r"already built|built in \d+\.\d s", page.locator("#environment-build").inner_text())
        assert re.fullmatch(r"\d+\.\d MB", page.locator("#environment-size").inner_text())
    finally:
        context.close()


def test_a_misnamed_lock_file_is_refused_next_to_its_field(page, experiment, tmp_path):
    lock = tmp_path / "deps.txt"
    lock.write_text(REQUIREMENTS)
    fill(page, "misnamed-lock", {**experiment, "lock": lock}, tmp_path)
    page.click("#publish-form button[type=submit]")
    page.wait_for_selector("#error-lock")
    assert page.locator("#error-lock").inner_text() == \
        "deps.txt: a lock file is named requirements.lock, pylock.toml or uv.lock"
    assert page.locator("#publish-form button[type=submit]").is_enabled()  # fix it and send again
    assert page.url.endswith("/admin/publish")
