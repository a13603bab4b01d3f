"""Admin logins: hashed passwords, a session cookie, and a limit on failed attempts."""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import re

from flask import flash, g, redirect, render_template, request, session, url_for
from sqlalchemy.exc import DBAPIError
from werkzeug.security import check_password_hash, generate_password_hash

from publisher.registry import now

from ..scoring import state
from . import bp

log = logging.getLogger("scorepub.admin")

LOCKOUT = dt.timedelta(minutes=15)
# checked against when the user does not exist, so both paths cost one hash
_DUMMY_HASH = generate_password_hash("scorepub-no-such-user")


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def _fingerprint(password_hash: str) -> str:
    """Ties a session to the password it was made with: a new password logs every session out."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _session_user() -> str | None:
    """The session's user, unless its password changed or it logged out since the session was made."""
    user = session.get("user")
    stored = state().registry.login_state(user) if user else None
    if stored is None or session.get("fp") != _fingerprint(stored[0]) or session.get("gen") != stored[1]:
        return None
    return user


def login_required(view):
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        user = _session_user()
        if user is None:
            session.clear()
            return redirect(url_for("admin.login", next=request.full_path if request.method == "GET" else None))
        g.user = user
        return view(*args, **kwargs)

    return wrapped


_UNSAFE_IN_NEXT = re.compile(r"[\x00-\x1f\x7f\\]")  # CR/LF (a header injection), other controls, backslashes


def _safe_next(target: str | None) -> str:
    if (target and target.startswith("/admin") and not target.startswith("//")
            and not _UNSAFE_IN_NEXT.search(target)):
        return target
    return url_for("admin.services")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    st = state()
    name = request.form.get("name", "").strip()[:64]
    password = request.form.get("password", "")
    # counted before the password is checked, in one transaction: concurrent guesses cannot
    # all pass the check before any is recorded
    try:
        attempt = st.registry.claim_login_attempt(name or "-", now() - LOCKOUT, st.settings.login_max_failures)
    except DBAPIError:  # e.g. a full disk: an attempt that cannot be counted is not checked either
        log.error("a login attempt for %r could not be recorded; refused", name, exc_info=True)
        flash("Logins cannot be recorded right now (the registry cannot be written); try again later.", "error")
        return render_template("login.html", next=request.form.get("next", ""), name=name), 503
    if attempt is None:
        flash(f"Too many failed logins for '{name}'. Try again in {int(LOCKOUT.total_seconds() // 60)} minutes.",
              "error")
        return render_template("login.html", next=request.form.get("next", ""), name=name), 429
    found = st.registry.login_state(name) if name else None
    stored = found[0] if found else None
    if not check_password_hash(stored or _DUMMY_HASH, password) or stored is None:
        flash("Wrong user name or password.", "error")
        return render_template("login.html", next=request.form.get("next", ""), name=name), 401
    st.registry.forgive_login_attempt(attempt)  # the right password: not a failure
    session.clear()
    session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME (12 h)
    session["user"] = name
    session["fp"] = _fingerprint(stored)
    session["gen"] = found[1]
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout():
    user = _session_user()
    if user:  # server-side: a copy of this cookie (and the user's other sessions) stops working
        state().registry.revoke_sessions(user)
    session.clear()
    return redirect(url_for("admin.login"))
