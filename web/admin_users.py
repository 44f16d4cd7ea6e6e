"""fieldsync's own user administration, for every dialect (admin JWT): GET/POST /admin/users,
GET/PATCH/DELETE /admin/users/<username>. An admin manages the users of its tenant and the tenants
below it; a system admin manages everyone, and to any other admin a system user does not exist. A
password change revokes the user's tokens; nobody changes their own role or deletes themselves, and the
last system admin stays. Bodies are checked at the edge by the marshmallow schemas below (a 400
`invalid <fields>` with a `fields` map), which also describe these routes in /openapi.json."""
from __future__ import annotations

from flask import Blueprint
from marshmallow import RAISE, Schema, fields, validate

from models.tables import ROLES
from models.users import (
    TENANT_MAX, USERNAME_MAX, LastSystemAdmin, UserExists, create_user, delete_user, get_by_username, list_users,
    set_password,
)
from web import context, db
from web.auth import check_tenant, current_principal, require
from web.errors import BadRequest, Conflict, NotFound
from web.jsonbody import read_json_object
from web.ops.jobs import _iso
from web.ops.schemas import CleanText, load, not_blank

bp = Blueprint("admin_users", __name__, url_prefix="/admin/users")

PASSWORD_MAX = 1024
PASSWORD_MIN = 8
USERNAME_PATTERN = r"^[^\s/\\?#%]+$"  # a user name is a path segment of these routes


class UserIn(Schema):
    """A new user."""
    class Meta:
        unknown = RAISE

    username = CleanText(required=True, max_length=USERNAME_MAX,
                         validate=[not_blank, validate.Regexp(USERNAME_PATTERN,
                                                              error="may not hold spaces, /, \\, ?, # or %")])
    password = CleanText(required=True, max_length=PASSWORD_MAX, validate=validate.Length(min=PASSWORD_MIN),
                         load_only=True, metadata={"description": f"at least {PASSWORD_MIN} characters; "
                                                                  "stored only as a slow hash"})
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    tenant = CleanText(max_length=TENANT_MAX, validate=not_blank,
                       metadata={"description": "the admin's own tenant or one below it (default: its own)"})


class UserPatch(Schema):
    """A change of password or role (or both)."""
    class Meta:
        unknown = RAISE

    password = CleanText(max_length=PASSWORD_MAX, validate=validate.Length(min=PASSWORD_MIN), load_only=True,
                         metadata={"description": "a new password: the user's tokens are revoked"})
    role = fields.String(validate=validate.OneOf(ROLES))


class UserOut(Schema):
    id = fields.UUID()
    username = fields.String()
    role = fields.String(validate=validate.OneOf(ROLES))
    tenant = fields.String()
    system = fields.Boolean(metadata={"description": "a system user (sees every tenant)"})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class UserList(Schema):
    users = fields.List(fields.Nested(UserOut))


def user_view(user) -> dict:
    return {"id": str(user.id), "username": user.username, "role": user.role, "tenant": user.tenant_id,
            "system": user.is_system, "created_at": _iso(user.created_at), "updated_at": _iso(user.updated_at)}


def may_manage(principal, user) -> bool:
    """Users of the tenants the admin may act in; a system user only for a system admin."""
    return principal.may_act_in(user.tenant_id) and (principal.is_system or not user.is_system)


def _load(username: str):
    principal = current_principal()
    found = get_by_username(db.session(), username) if len(username) <= USERNAME_MAX and "\x00" not in username \
        else None
    if found is None or not may_manage(principal, found):
        raise NotFound("no such user")
    return found


@bp.post("")
@require("admin")
def create():
    given = load(UserIn(), read_json_object(), code="invalid_user")
    principal = current_principal()
    tenant = check_tenant(principal, given.get("tenant", "").strip() or None, as_not_found=False)
    try:
        user = create_user(db.session(), username=given["username"], password=given["password"], role=given["role"],
                           tenant_id=tenant, rounds=context.settings().bcrypt_rounds)
    except UserExists:
        raise Conflict("a user of that name exists", code="user_exists") from None
    view = user_view(user)
    db.commit()
    return view, 201, {"Location": f"/admin/users/{user.username}"}


@bp.get("")
@require("admin")
def list_all():
    principal = current_principal()
    users = list_users(db.session(), subtree=None if principal.is_system else principal.tenant_id)
    return {"users": [user_view(u) for u in users if may_manage(principal, u)]}


@bp.get("/<username>")
@require("admin")
def get_one(username: str):
    return user_view(_load(username))


@bp.patch("/<username>")
@require("admin")
def update(username: str):
    user = _load(username)
    given = load(UserPatch(), read_json_object(), code="invalid_user")
    if not given:
        raise BadRequest("nothing to change: send password or role", code="invalid_user")
    principal = current_principal()
    if "role" in given and given["role"] != user.role:
        if user.username == principal.username:
            raise Conflict("you cannot change your own role; ask another admin", code="own_role")
        user.role = given["role"]
    if "password" in given:
        set_password(db.session(), user, given["password"], context.settings().bcrypt_rounds)
    db.session().flush()
    db.session().refresh(user)
    view = user_view(user)
    db.commit()
    return view


@bp.delete("/<username>")
@require("admin")
def delete(username: str):
    user = _load(username)
    if user.username == current_principal().username:
        raise Conflict("you cannot delete your own account; ask another admin", code="cannot_delete_self")
    try:
        delete_user(db.session(), user.username)
    except LastSystemAdmin:
        raise Conflict("this is the last system admin; create another one first", code="last_system_admin") from None
    db.commit()
    return {"deleted": True, "username": user.username}


# the schemas by name, for /openapi.json (web.ops.openapi describes the routes)
SCHEMAS = {"UserIn": UserIn, "UserPatch": UserPatch, "UserOut": UserOut, "UserList": UserList}
