"""User administration (admin only) and password change (any user), in the Synkronus 1.0.3 shapes.
An admin manages the users of the tenants it may act in (its own tenant and those below it; the system
admin: all). A system admin is touched only by a system admin: to any other admin it does not exist
(404 on reset-password and delete, absent from the listing). A password change or reset revokes every
token the user holds."""
from __future__ import annotations

from flask import Blueprint

from models.tables import ROLES
from models.users import (
    TENANT_MAX, USERNAME_MAX, LastSystemAdmin, UserExists, check_password, create_user, delete_user,
    get_by_username, list_users, set_password,
)
from web import context, db
from web.admin_users import may_manage
from web.auth import check_tenant, current_principal, require
from web.errors import BadRequest, Conflict, NotFound, Unauthorized
from web.jsonbody import read_json_object
from web.synkronus.auth import PasswordAttempt, password_field, text_field

bp = Blueprint("synkronus_users", __name__)


def _iso(value):
    return value.isoformat().replace("+00:00", "Z")


CREATE_FIELDS = {"username", "password", "role", "tenantId", "tenant"}


def _rounds() -> int:
    return context.settings().bcrypt_rounds


def _visible_user(username):
    username = text_field(username, "username", max_len=USERNAME_MAX)
    principal = current_principal()
    user = get_by_username(db.session(), username)
    if user is None or not may_manage(principal, user):
        raise NotFound("User not found")
    return user


@bp.post("/users/create")
@bp.post("/users")
@require("admin")
def create():
    body = read_json_object()
    unknown = set(body) - CREATE_FIELDS
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}; expected username, password, role "
                         "and optionally tenantId", code="unknown_field")
    username, password, role = body.get("username"), body.get("password"), body.get("role")
    if not all(isinstance(v, str) and v for v in (username, password, role)):
        raise BadRequest("Missing required fields")
    text_field(username, "username", max_len=USERNAME_MAX, code="invalid_username")
    password_field(password, "password")
    if role not in ROLES:
        raise BadRequest(f"invalid role: expected one of {', '.join(ROLES)}", code="invalid_role")
    principal = current_principal()
    tenant = _tenant_of(principal, body)
    try:
        user = create_user(db.session(), username=username, password=password, role=role, tenant_id=tenant,
                           rounds=_rounds())
    except UserExists:
        raise Conflict("Username already exists", code="user_exists") from None
    db.commit()
    return {"username": user.username, "role": user.role, "createdAt": _iso(user.created_at)}, 201


def _tenant_of(principal, body: dict) -> str:
    """The new user's tenant: `tenantId` (or its older spelling `tenant`) when given, else the admin's
    own. It must be one the admin may act in (its own or one below it; the system admin: any)."""
    given = [body[k] for k in ("tenantId", "tenant") if k in body]
    if len(given) > 1 and given[0] != given[1]:
        raise BadRequest("tenantId and tenant disagree; send tenantId only", code="invalid_tenant")
    if not given:
        return principal.tenant_id
    tenant = given[0]
    if not isinstance(tenant, str) or not tenant.strip() or len(tenant.strip()) > TENANT_MAX:
        raise BadRequest(f"tenantId must be a non-empty text of at most {TENANT_MAX} characters",
                         code="invalid_tenant")
    tenant = text_field(tenant.strip(), "tenantId", code="invalid_tenant")
    return check_tenant(principal, tenant, as_not_found=False)


@bp.get("/users")
@require("admin")
def index():
    principal = current_principal()
    users = list_users(db.session(), subtree=None if principal.is_system else principal.tenant_id)
    return [{"id": str(u.id), "username": u.username, "role": u.role, "createdAt": _iso(u.created_at),
             "updatedAt": _iso(u.updated_at)} for u in users if may_manage(principal, u)]


@bp.delete("/users/<username>")
@bp.delete("/users/delete/<username>")
@require("admin")
def delete(username: str):
    user = _visible_user(username)
    if user.username == current_principal().username:
        raise Conflict("You cannot delete your own account; ask another admin", code="cannot_delete_self")
    try:
        delete_user(db.session(), user.username)
    except LastSystemAdmin:
        raise Conflict("This is the last system admin; create another one before deleting it",
                       code="last_system_admin") from None
    db.commit()
    return {"message": "User deleted successfully"}


@bp.post("/users/reset-password")
@require("admin")
def reset_password():
    body = read_json_object()
    username, new_password = body.get("username"), body.get("newPassword")
    if not (isinstance(username, str) and username and isinstance(new_password, str) and new_password):
        raise BadRequest("Missing required fields")
    password_field(new_password, "newPassword")
    user = _visible_user(username)
    set_password(db.session(), user, new_password, _rounds())
    db.commit()
    return {"message": "Password reset successfully"}


@bp.post("/users/change-password")
@require()
def change_password():
    body = read_json_object()
    current, new_password = body.get("currentPassword"), body.get("newPassword")
    if not (isinstance(current, str) and current and isinstance(new_password, str) and new_password):
        raise BadRequest("Missing required fields")
    password_field(current, "currentPassword")
    password_field(new_password, "newPassword")
    principal = current_principal()
    attempt = PasswordAttempt(principal.username)  # a stolen token must not guess the password unthrottled
    user = get_by_username(db.session(), principal.username)
    if user is None or not check_password(current, user.password_hash):
        attempt.failed()
        raise Unauthorized("Current password is incorrect")
    attempt.succeeded()
    set_password(db.session(), user, new_password, _rounds())
    db.commit()
    return {"message": "Password changed successfully"}
