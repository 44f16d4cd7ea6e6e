"""Authentication and authorisation: fieldsync JWTs (HS256, claims username/role/sub/iat/exp plus
tenant, token type and the user's token version `ver`), refresh rotation with reuse detection, role gates
and tenant checks. A token whose `ver` is not the user's current token version (a password change or
reset bumps it) is refused everywhere: at every request and at refresh."""
from __future__ import annotations

import datetime as dt
import functools
import uuid
from dataclasses import dataclass

from flask import Flask, current_app, g, request
from flask_jwt_extended import (
    JWTManager, create_access_token, create_refresh_token, decode_token, get_jwt, verify_jwt_in_request,
)
from sqlalchemy import select

from models.ids import parse_uuid
from models.tables import ROLES, RefreshFamily, User
from models.users import tenant_covers
from web import db
from web.errors import Forbidden, NotFound, Unauthorized, render

ROLE_RANK = {"read-only": 0, "read-write": 1, "admin": 2}
# An analyst reads exports and nothing else: it passes only a gate that names it (require(..., ANALYST)).
ANALYST = "analyst"
ANY_ROLE = ("read-only", "read-write", "admin", ANALYST)


@dataclass(frozen=True)
class Principal:
    user_id: str
    username: str
    role: str
    tenant_id: str
    is_system: bool

    def may_act_in(self, tenant_id: str) -> bool:
        return self.is_system or tenant_covers(self.tenant_id, tenant_id)

    def has_role(self, *roles: str) -> bool:
        return self.role in roles


def install(app: Flask, settings) -> None:
    app.config.update(
        JWT_SECRET_KEY=settings.jwt_secret,
        JWT_ALGORITHM="HS256",
        JWT_DECODE_ALGORITHMS=["HS256"],
        JWT_TOKEN_LOCATION=["headers"],
        JWT_HEADER_NAME="Authorization",
        JWT_HEADER_TYPE="Bearer",
        JWT_ACCESS_TOKEN_EXPIRES=dt.timedelta(minutes=settings.access_token_minutes),
        JWT_REFRESH_TOKEN_EXPIRES=dt.timedelta(days=settings.refresh_token_days),
        JWT_DECODE_LEEWAY=settings.jwt_leeway_seconds,
        JWT_ERROR_MESSAGE_KEY="message",
    )
    jwt = JWTManager(app)

    @jwt.unauthorized_loader
    def _missing(reason):
        return render(Unauthorized("a bearer token is required"))

    @jwt.invalid_token_loader
    def _invalid(reason):
        return render(Unauthorized("the token is invalid"))

    @jwt.expired_token_loader
    def _expired(header, payload):
        return render(Unauthorized("the token has expired"))

    @jwt.revoked_token_loader
    def _revoked(header, payload):
        return render(Unauthorized("the token has been revoked"))

    @jwt.user_lookup_error_loader
    def _no_user(header, payload):
        return render(Unauthorized("the token's user no longer exists"))

    @jwt.needs_fresh_token_loader
    def _fresh(header, payload):
        return render(Unauthorized("a fresh token is required"))

    @jwt.token_in_blocklist_loader
    def _revoked_by_version(header, payload):
        user = _user_of(payload)
        return user is not None and not _version_matches(user, payload)

    @jwt.user_lookup_loader
    def _lookup(header, payload):
        return _user_of(payload)


def _user_of(payload: dict) -> User | None:
    """The token's user, loaded once per request (the revocation check and the user lookup both ask)."""
    user_id = parse_uuid(payload.get("sub"))
    if user_id is None:
        return None
    cached = g.get("fieldsync_token_user")
    if cached is not None and cached[0] == user_id:
        return cached[1]
    user = db.session().get(User, user_id)
    g.fieldsync_token_user = (user_id, user)
    return user


def _version_matches(user: User, payload: dict) -> bool:
    """Tokens issued before token versions existed carry no `ver`: they count as version 0."""
    ver = payload.get("ver", 0)
    return type(ver) is int and ver == user.token_version


def issue_tokens(session, user: User, family: str | None = None) -> dict:
    """Access + refresh token pair. A new family starts at login; refresh continues the family."""
    claims = {"username": user.username, "role": user.role, "tenant": user.tenant_id, "ver": user.token_version}
    if user.is_system:
        claims["sys"] = True
    refresh_jti = uuid.uuid4().hex
    settings = current_app.config["FIELDSYNC_SETTINGS"]
    expires = dt.timedelta(days=settings.refresh_token_days)
    access = create_access_token(identity=str(user.id), additional_claims={**claims, "typ": "access"})
    refresh_claims = {**claims, "typ": "refresh", "fam": family or uuid.uuid4().hex, "jti": refresh_jti}
    refresh = create_refresh_token(identity=str(user.id), additional_claims=refresh_claims)
    now = dt.datetime.now(dt.timezone.utc)
    if family is None:
        session.add(RefreshFamily(family=refresh_claims["fam"], user_id=user.id, current_jti=refresh_jti,
                                  expires_at=now + expires))
    else:
        fam = session.get(RefreshFamily, family)
        fam.current_jti = refresh_jti
        fam.expires_at = now + expires
    access_exp = decode_token(access)["exp"]
    return {"token": access, "refreshToken": refresh, "expiresAt": access_exp}


def rotate_refresh(session, refresh_token: str) -> dict:
    """Exchange a refresh token for a new pair. Reusing an already rotated token revokes its family."""
    try:
        payload = decode_token(refresh_token)
    except Exception:
        raise Unauthorized("the refresh token is invalid or expired") from None
    if payload.get("type") != "refresh":
        raise Unauthorized("not a refresh token")
    family = payload.get("fam")
    if not isinstance(family, str):
        raise Unauthorized("the refresh token is invalid or expired")
    fam = session.execute(select(RefreshFamily).where(RefreshFamily.family == family)
                          .with_for_update()).scalar_one_or_none()
    if fam is None or fam.revoked:
        raise Unauthorized("the refresh token has been revoked")
    if fam.current_jti != payload.get("jti"):
        fam.revoked = True  # reuse of a rotated token: someone else holds the family; end it
        session.commit()
        raise Unauthorized("the refresh token was already used; please log in again")
    user_id = parse_uuid(payload.get("sub"))
    user = session.get(User, user_id) if user_id is not None else None
    if user is None or fam.user_id != user.id:
        raise Unauthorized("the token's user no longer exists")
    if not _version_matches(user, payload):
        raise Unauthorized("the refresh token has been revoked")
    return issue_tokens(session, user, family=fam.family)


def _principal_of(user: User) -> Principal:
    """The request's principal; an unknown role counts as read-only."""
    role = user.role if user.role in ROLES else "read-only"
    return Principal(user_id=str(user.id), username=user.username, role=role, tenant_id=user.tenant_id,
                     is_system=bool(user.is_system))


def principal_for(user: User) -> Principal:
    """The principal of a user authenticated another way (the ops console's session)."""
    return _principal_of(user)


def current_principal() -> Principal:
    if "principal" in g:
        return g.principal
    verify_jwt_in_request()
    claims = get_jwt()
    from flask_jwt_extended import current_user
    g.principal = _principal_of(current_user)
    if claims.get("type") != "access":
        raise Unauthorized("an access token is required")
    _refuse_analyst(g.principal)
    return g.principal


def _refuse_analyst(principal: Principal) -> None:
    if principal.role == ANALYST and not g.get("analyst_allowed"):
        raise Forbidden("an analyst may only read exports")


def require(*roles: str, proven_by_view: bool = False):
    """Decorator: a valid access token, and (when roles are given) one of those roles.

    `proven_by_view` (for a view open to every role but the analyst, that reads before it writes): the
    principal is taken from the token's claims alone (signature, expiry and type checked), and the view
    proves it in its own first statement (claim_proof) instead of this decorator loading the user in a
    round trip of its own; when the proof fails the view calls prove_claim(), which makes the full check
    (a revoked token is refused there) and gives the principal as stored."""
    if proven_by_view and roles:
        raise ValueError("a view that proves its principal itself must be open to every role")

    def wrap(view):
        @functools.wraps(view)
        def inner(*args, **kwargs):
            if ANALYST in roles:
                g.analyst_allowed = True
            claimed = _claimed() if proven_by_view else None
            if claimed is not None:
                g.principal, g.fieldsync_claimed_version = claimed
                return view(*args, **kwargs)
            principal = current_principal()
            if roles and principal.role not in roles:
                raise Forbidden(f"this action needs the role {' or '.join(roles)}")
            return view(*args, **kwargs)
        return inner
    return wrap


def _claimed() -> tuple[Principal, int] | None:
    """(principal, token version) as the request's access token claims them, or None when the token is
    missing, invalid, expired, not an access token, or claims what only the full check may grant (an
    analyst, an unknown role): current_principal() then answers."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    try:
        claims = decode_token(header[len("Bearer "):].strip())
    except Exception:  # refused by the full check, with its own message
        return None
    fields = (claims.get("sub"), claims.get("username"), claims.get("role"), claims.get("tenant"))
    ver = claims.get("ver", 0)
    if (claims.get("type") != "access" or not all(isinstance(f, str) for f in fields) or type(ver) is not int
            or claims["role"] not in ROLES or claims["role"] == ANALYST):
        return None
    user_id = parse_uuid(claims["sub"])
    if user_id is None:
        return None
    principal = Principal(user_id=str(user_id), username=claims["username"], role=claims["role"],
                          tenant_id=claims["tenant"], is_system=claims.get("sys") is True)
    return principal, ver


def claim_proof() -> tuple[str, dict] | None:
    """For a view under require(proven_by_view=True): (a boolean SQL expression, its parameters) true when
    the stored user is exactly the one the token claims (same id, token version, name, role, tenant and
    system flag), to evaluate in the view's first statement; None when the principal is already proven."""
    version = g.get("fieldsync_claimed_version")
    if version is None:
        return None
    principal = g.principal
    return ("EXISTS (SELECT 1 FROM users WHERE id = CAST(:claim_user AS uuid) AND token_version = :claim_ver "
            "AND username = :claim_name AND role = :claim_role AND tenant_id = :claim_tenant "
            "AND is_system = :claim_system)",
            {"claim_user": principal.user_id, "claim_ver": version, "claim_name": principal.username,
             "claim_role": principal.role, "claim_tenant": principal.tenant_id,
             "claim_system": principal.is_system})


def prove_claim(proven: bool) -> Principal:
    """After the view's statement: the principal, as claimed when `proven`; otherwise the full check runs
    (raising Unauthorized for a revoked token or a deleted user) and its principal replaces the claim, so
    the view reads again as that one."""
    if g.pop("fieldsync_claimed_version", None) is not None and not proven:
        g.pop("principal", None)
    return current_principal()


def check_tenant(principal: Principal, tenant_id: str | None, *, as_not_found: bool = True) -> str:
    """The tenant a request acts in: the caller's own when none is given; refused when not covered."""
    if not tenant_id:
        return principal.tenant_id
    if not principal.may_act_in(tenant_id):
        if as_not_found:
            raise NotFound("no such tenant")
        raise Forbidden("you may not act in this tenant")
    return tenant_id


def principal_from_token(token: str) -> Principal:
    """Authenticate a raw access token that arrives outside the Authorization header (DIGIT's
    requestInfo.authToken, for example). Raises Unauthorized."""
    try:
        payload = decode_token(token)
    except Exception:
        raise Unauthorized("the token is invalid or expired") from None
    if payload.get("type") != "access":
        raise Unauthorized("an access token is required")
    user = _user_of(payload)
    if user is None:
        raise Unauthorized("the token's user no longer exists")
    if not _version_matches(user, payload):
        raise Unauthorized("the token has been revoked")
    g.principal = _principal_of(user)
    _refuse_analyst(g.principal)
    return g.principal
