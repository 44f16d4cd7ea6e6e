"""Users and tenants: creation, lookup, password hashing (bcrypt), tenant hierarchy."""
from __future__ import annotations

import hashlib
import uuid

import bcrypt
from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from models.tables import ROLES, RefreshFamily, Tenant, User

DEFAULT_TENANT = "default"
USERNAME_MAX = 128  # users.username
TENANT_MAX = 128  # tenants.id


class UserExists(Exception):
    pass


class LastSystemAdmin(Exception):
    """Deleting this user would leave the server without a system admin."""


def _prehash(password: str) -> bytes:
    # bcrypt reads at most 72 bytes; hashing first keeps long passphrases whole.
    return hashlib.sha256(password.encode("utf-8")).hexdigest().encode()


def hash_password(password: str, rounds: int = 12) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode()


def check_password(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), hashed.encode())
    except ValueError:
        return False


_DUMMY_HASH = None


def burn_time(rounds: int) -> None:
    """Spend about as long as a real check, so an unknown user is not told apart by timing."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password("not-a-password", rounds)
    check_password("still-not-a-password", _DUMMY_HASH)


def ensure_tenant(session: Session, tenant_id: str, name: str = "") -> None:
    session.execute(pg_insert(Tenant).values(id=tenant_id, name=name or tenant_id).on_conflict_do_nothing())


def tenant_exists(session: Session, tenant_id: str) -> bool:
    return session.get(Tenant, tenant_id) is not None


def create_user(session: Session, *, username: str, password: str, role: str, tenant_id: str = DEFAULT_TENANT,
                is_system: bool = False, rounds: int = 12) -> User:
    if role not in ROLES:
        raise ValueError(f"invalid role {role!r}; expected one of {', '.join(ROLES)}")
    ensure_tenant(session, tenant_id)
    inserted = session.execute(pg_insert(User).values(
        id=uuid.uuid4(), tenant_id=tenant_id, username=username, password_hash=hash_password(password, rounds),
        role=role, is_system=is_system,
    ).on_conflict_do_nothing(index_elements=["username"]).returning(User.id)).scalar_one_or_none()
    if inserted is None:
        raise UserExists(username)
    return session.get(User, inserted)


def get_by_username(session: Session, username: str) -> User | None:
    return session.execute(select(User).where(User.username == username)).scalar_one_or_none()


def list_users(session: Session, tenant_id: str | None = None, *, subtree: str | None = None) -> list[User]:
    """All users, or those of one tenant, or (`subtree`) of a tenant and the tenants below it."""
    stmt = select(User).order_by(User.username)
    if tenant_id is not None:
        stmt = stmt.where(User.tenant_id == tenant_id)
    if subtree is not None:
        below = subtree.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + ".%"
        stmt = stmt.where(or_(User.tenant_id == subtree, User.tenant_id.like(below, escape="\\")))
    return list(session.execute(stmt).scalars())


def delete_user(session: Session, username: str, tenant_id: str | None = None) -> bool:
    """Delete a user; False when there is none (in that tenant). Raises LastSystemAdmin rather than
    delete the only system admin left."""
    # Serialise deletions that could race to remove the last two system admins at once.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('fieldsync:system-admins'))"))
    target = get_by_username(session, username)
    if target is not None and target.is_system:
        others = session.execute(select(func.count()).select_from(User).where(
            User.is_system.is_(True), User.role == "admin", User.id != target.id)).scalar_one()
        if others == 0:
            raise LastSystemAdmin(username)
    stmt = delete(User).where(User.username == username)
    if tenant_id is not None:
        stmt = stmt.where(User.tenant_id == tenant_id)
    return session.execute(stmt).rowcount == 1


def set_password(session: Session, user: User, password: str, rounds: int = 12) -> None:
    """Set a new password and revoke every token issued before: the user's token version moves on (an
    access or refresh token carrying the old one is refused) and its refresh families end."""
    user.password_hash = hash_password(password, rounds)
    user.updated_at = func.now()
    user.token_version = User.token_version + 1
    session.flush()
    session.refresh(user, ["token_version"])
    session.execute(update(RefreshFamily).where(RefreshFamily.user_id == user.id, RefreshFamily.revoked.is_(False))
                    .values(revoked=True))


def bootstrap_admin(session: Session, username: str, password: str | None = None, rounds: int = 12, *,
                    only_if_no_users: bool = False) -> str | None:
    """Create the system admin; returns the password it was given (a generated one when `password` is
    None), or None when nothing was created. With only_if_no_users (what `fieldsync serve` asks), the admin
    is created only on a database without any user, so a deleted or renamed admin is never recreated;
    otherwise only when no user of that name exists."""
    import secrets

    # Serialise concurrent starts, so two of them cannot both see an empty table.
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext('fieldsync:bootstrap-admin'))"))
    ensure_tenant(session, DEFAULT_TENANT)
    if only_if_no_users:
        if session.execute(select(User.id).limit(1)).first() is not None:
            return None
    elif get_by_username(session, username) is not None:
        return None
    password = password or secrets.token_urlsafe(12)
    create_user(session, username=username, password=password, role="admin", tenant_id=DEFAULT_TENANT,
                is_system=True, rounds=rounds)
    return password


def tenant_covers(actor_tenant: str, target_tenant: str) -> bool:
    """DIGIT-style hierarchy: a user of `pb` may act in `pb` and in `pb.amritsar`."""
    return target_tenant == actor_tenant or target_tenant.startswith(actor_tenant + ".")
