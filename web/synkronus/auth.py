"""POST /auth/login and POST /auth/refresh (rotation; reuse of a rotated refresh token ends its family)."""
from __future__ import annotations

from flask import Blueprint

from models.users import burn_time, check_password, get_by_username
from web import context, db
from web.auth import issue_tokens, rotate_refresh
from web.errors import BadRequest, Unauthorized
from web.jsonbody import read_json_object

bp = Blueprint("synkronus_auth", __name__)


@bp.post("/auth/login")
def login():
    body = read_json_object()
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not username:
        raise BadRequest("Username is required", code="invalid_request")
    if not isinstance(password, str) or not password:
        raise BadRequest("Password is required", code="invalid_request")
    session = db.session()
    user = get_by_username(session, username)
    if user is None:
        burn_time(context.settings().bcrypt_rounds)
        raise Unauthorized("Invalid credentials")
    if not check_password(password, user.password_hash):
        raise Unauthorized("Invalid credentials")
    tokens = issue_tokens(session, user)
    db.commit()
    return tokens


@bp.post("/auth/refresh")
def refresh():
    body = read_json_object()
    token = body.get("refreshToken")
    if not isinstance(token, str) or not token:
        raise BadRequest("refreshToken is required", code="invalid_request")
    session = db.session()
    tokens = rotate_refresh(session, token)
    db.commit()
    return tokens
