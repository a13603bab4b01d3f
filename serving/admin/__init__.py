"""The admin page: services, versions, keys, the call log, a test console and API help.

Server-rendered templates (``templates/``) over plain forms, so every action works without
JavaScript; every route needs a login, and every form carries a CSRF token (Flask-WTF).
"""
from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from . import auth, views  # noqa: E402 - registers the routes

__all__ = ["bp", "auth", "views"]
