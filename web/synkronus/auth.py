"""POST /auth/login and POST /auth/refresh (rotation; reuse of a rotated refresh token ends its family).

Login is throttled per (user name, client address) with a longer per-account ceiling (web/throttle.py):
a 429 with Retry-After, even for the right password, until the window ends; a success clears the
counter of its (user name, address). The current password of /users/change-password counts the same."""
from __future__ import annotations

from flask import Blueprint, request

from models.users import USERNAME_MAX, burn_time, check_password, get_by_username
from web import context, db, throttle
from web.auth import issue_tokens, rotate_refresh
from web.errors import BadRequest, TooManyRequests, Unauthorized
from web.jsonbody import read_json_object

bp = Blueprint("synkronus_auth", __name__)


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (the JSON escape \ud800)
        return False
    return True


def text_field(value, label: str, *, max_len: int | None = None, allow_nul: bool = False, code: str = "invalid_request"):
    """A required text field of a request: a non-empty string that PostgreSQL can store (no NUL unless
    `allow_nul`, no lone surrogate) and at most `max_len` characters. Raises a 400 naming the field."""
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{label} is required", code=code)
    if (not allow_nul and "\x00" in value) or not _encodable(value):
        raise BadRequest(f"{label} must be text without NUL characters or unpaired surrogates", code=code)
    if max_len is not None and len(value) > max_len:
        raise BadRequest(f"{label} must be at most {max_len} characters", code=code)
    return value


def password_field(value, label: str = "Password") -> str:
    """Passwords are hashed, never stored: any text (NUL included) but a lone surrogate, of any length."""
    return text_field(value, label, allow_nul=True)


class PasswordAttempt:
    """One throttled password check of a user (login, or the current password of a change): 429 while
    its (user name, address) or the user name is blocked; `failed()` / `succeeded()` count it."""

    def __init__(self, username: str):
        self.account, self.address, self.redis = f"user:{username}", request.remote_addr, context.redis()
        wait = throttle.login_blocked_for(self.redis, self.account, self.address)
        if wait:
            raise TooManyRequests("Too many failed login attempts; try again later", code="too_many_attempts",
                                  retry_after=wait)

    def failed(self) -> None:
        throttle.login_failed(self.redis, self.account, self.address)

    def succeeded(self) -> None:
        throttle.login_succeeded(self.redis, self.account, self.address)


@bp.post("/auth/login")
def login():
    body = read_json_object()
    username = text_field(body.get("username"), "Username", max_len=USERNAME_MAX)
    password = password_field(body.get("password"))
    attempt = PasswordAttempt(username)
    session = db.session()
    user = get_by_username(session, username)
    if user is None:
        burn_time(context.settings().bcrypt_rounds)
        attempt.failed()
        raise Unauthorized("Invalid credentials")
    if not check_password(password, user.password_hash):
        attempt.failed()
        raise Unauthorized("Invalid credentials")
    attempt.succeeded()
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
