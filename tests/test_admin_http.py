"""The admin page's HTTP rules that need no browser, through the app in this process (Flask's
test client). The pages themselves are driven in a real browser in tests/admin/."""
from __future__ import annotations

import re

import pytest

from conftest import App, cli_env


@pytest.fixture(scope="module")
def admin_app(tmp_path_factory):
    home = tmp_path_factory.mktemp("admin-app-home")
    app = App(home, cli_env(home, SCOREPUB_POOL_SIZE="1", SCOREPUB_LOGIN_MAX_FAILURES="3")).start()
    yield app
    app.stop()


def test_failed_logins_are_rate_limited(admin_app):
    session = admin_app.client()  # one cookie jar: the CSRF token belongs to its session
    page = admin_app.get("/admin/login", client=session).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    statuses = [admin_app.post("/admin/login", client=session,
                               data={"csrf_token": token, "name": "mallory", "password": f"guess{i}"}).status_code
                for i in range(5)]
    assert statuses[:3] == [401, 401, 401] and statuses[3:] == [429, 429]
