"""Helpers to make users and tokens in tests."""
from __future__ import annotations

import uuid

from models.users import create_user


def make_user(session, *, role="read-write", tenant="default", username=None, password="pw-secret",
              is_system=False):
    username = username or f"u-{uuid.uuid4().hex[:10]}"
    user = create_user(session, username=username, password=password, role=role, tenant_id=tenant,
                       is_system=is_system, rounds=4)
    session.commit()
    return user


def token_for(app, user) -> str:
    from flask_jwt_extended import create_access_token
    with app.app_context():
        claims = {"username": user.username, "role": user.role, "tenant": user.tenant_id, "typ": "access",
                  "ver": user.token_version}
        return create_access_token(identity=str(user.id), additional_claims=claims)


def bearer(app, user) -> dict:
    return {"Authorization": f"Bearer {token_for(app, user)}"}
