"""Who may call DIGIT's endpoints: a fieldsync access token (in `requestInfo.authToken`, DIGIT's place
for it, or a Bearer header), a writer role for anything that submits data, and a tenant the caller may
act in (its own, or one below it in DIGIT's dotted hierarchy)."""
from __future__ import annotations

from flask import request

from web.auth import Principal, current_principal, principal_from_token
from web.digit.envelope import digit_error, text_field
from web.errors import Forbidden, Unauthorized


def authenticate(info: dict) -> Principal:
    """The caller, from requestInfo.authToken (a fieldsync access token), or from a Bearer header."""
    token = info.get("authToken")
    if isinstance(token, str) and token.strip():
        return principal_from_token(token.strip())
    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        return current_principal()
    raise Unauthorized("requestInfo.authToken is required")


def require_writer(principal: Principal) -> None:
    if principal.role == "read-only":
        raise Forbidden("a read-only user may not submit data")


def require_tenant(principal: Principal, tenant_id: str) -> None:
    if not principal.may_act_in(tenant_id):
        raise digit_error("INVALID_TENANT_ID", f"the caller may not act in tenant {tenant_id}")


def tenant_param(value, *, field: str = "tenantId") -> str:
    """The tenant a request names (a form field, query parameter or body member): required text of at
    most 128 characters, with no NUL or lone surrogate."""
    return text_field(value, field, where="", max_length=128)


def tenant_in(principal: Principal, value, *, field: str = "tenantId") -> str:
    """tenant_param(), and a tenant the caller may act in."""
    tenant = tenant_param(value, field=field)
    require_tenant(principal, tenant)
    return tenant
