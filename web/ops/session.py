"""Sign-in for the ops console: a form for fieldsync admin accounts, a signed session cookie (HttpOnly,
SameSite=Lax, Secure behind TLS or when OPS_COOKIE_SECURE says so) and a CSRF token on every POST
(Flask-WTF's CSRFProtect, checked for the console's blueprint only: the sync APIs take bearer tokens,
not cookies). The session holds the user's id and token version: a password change, a role change
or a deleted account ends it at the next request. A tenant admin sees its tenant and the ones below."""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac

from flask import Flask, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from models.ids import parse_uuid
from models.tables import User
from web import db
from web.auth import Principal, principal_for
from web.errors import Forbidden, Unauthorized

SESSION_HOURS = 12
csrf = CSRFProtect()


class _SessionInterface(SecureCookieSessionInterface):
    def get_cookie_secure(self, app) -> bool:
        forced = app.config["FIELDSYNC_SETTINGS"].ops_cookie_secure
        return request.is_secure if forced is None else forced


def install(app: Flask, settings) -> None:
    # The session key is derived from JWT_SECRET (one secret to keep), never equal to it.
    app.secret_key = hmac.new(settings.jwt_secret.encode(), b"fieldsync ops console session",
                              hashlib.sha256).hexdigest()
    app.config.update(SESSION_COOKIE_NAME="fieldsync_ops", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=SESSION_HOURS),
                      WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=None)
    app.session_interface = _SessionInterface()
    csrf.init_app(app)


def sign_in(user: User) -> None:
    session.clear()
    session.permanent = True
    session["uid"] = str(user.id)
    session["ver"] = user.token_version


def sign_out() -> None:
    session.clear()


def console_principal() -> Principal | None:
    """The signed-in admin, or None (no session, or one that no longer holds)."""
    if "ops_principal" in g:
        return g.ops_principal
    principal = None
    user_id = parse_uuid(session.get("uid"))
    if user_id is not None:
        user = db.session().get(User, user_id)
        if user is not None and user.token_version == session.get("ver") and user.role == "admin":
            principal = principal_for(user)
        else:
            session.clear()
    g.ops_principal = principal
    return principal


def scope(principal: Principal) -> str | None:
    """The tenant subtree the principal sees (None: every tenant, for a system admin)."""
    return None if principal.is_system else principal.tenant_id


def require_admin(*, page: bool):
    """A console view: a page without a session redirects to the sign-in form; an action or an API call
    answers 401."""
    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            principal = console_principal()
            if principal is None:
                if page and request.method == "GET":
                    return redirect(url_for("ops_console.login", next=request.full_path.rstrip("?")))
                raise Unauthorized("sign in to the ops console with an admin account")
            if principal.role != "admin":
                raise Forbidden("the ops console is for admins")
            return view(*args, **kwargs)
        return inner
    return wrap
