"""mSupply authentication at the edge: HTTP Basic with the site name (v2+ send the SHA-256 hex of the
password, v1 may send it plain), the hardware binding of `msupply-site-uuid`, the Redis login throttle
per (account, client address) with a per-account ceiling (web/throttle.py), and the `from_site` /
`to_site` checks of the queue endpoints.

A satellite sends its credentials with every request, and checking them is a slow hash (bcrypt, by
design: ~0.25 s at the default cost). A successful check is remembered in the process for
VERIFIED_SECONDS as an HMAC of (site, stored hash, what was sent) under the server's secret, never the
password itself; a password change alters the stored hash and so misses the memory. The throttle still
applies to every request.

The queue reads and acks (the pull loop: a page and an ack per round) may take the site from the
process's memory of the last site row read for that name (`claimed_site`) instead of reading it first:
the credentials and the device are checked against that row as usual, and the page or ack statement
itself proves the row is still current (models.msupply.store.SiteProof, evaluated in that statement),
so a stale row (a changed password, a reset device, a deleted or renamed site) is never acted on: the
statement then does nothing and the request is authenticated afresh."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading

from cachetools import TTLCache

from flask import request

from models.msupply import SERVER_SITE_ID
from models.msupply import store as msupply
from models.msupply.store import SiteProof
from models.tables import User
from models.users import USERNAME_MAX, burn_time, get_by_username
from web import context, db, throttle
from web.errors import BadRequest, Conflict, Forbidden, TooManyRequests, Unauthorized
from web.inputs import clean_text

HARDWARE_HEADER = "msupply-site-uuid"
# The mobile app recognises a hardware mismatch by this exact prefix.
HARDWARE_MISMATCH = ("Site registration doesn't match. This site is registered to another device; "
                     "ask the administrator to reset its hardware ID.")
BAD_CREDENTIALS = "Invalid site name or password"
VERIFIED_SECONDS = 300
_verified: TTLCache = TTLCache(maxsize=20_000, ttl=VERIFIED_SECONDS)
_verified_lock = threading.Lock()


def _proof(site: msupply.Site, sent: str, allow_plain: bool) -> bytes:
    secret = context.settings().jwt_secret.encode()
    message = "\x00".join((site.tenant_id, str(site.site_id), site.password_hash, str(allow_plain), sent))
    return hmac.new(secret, message.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


# name -> the site row last read for it (a claim only: every use is proven in the statement it serves)
_claims: TTLCache = TTLCache(maxsize=20_000, ttl=VERIFIED_SECONDS)


def _remember(site: msupply.Site) -> None:
    if site.hardware_id is not None:  # an unbound site binds on its next request: read it afresh
        with _verified_lock:
            _claims[site.name] = site


def _forget(name: str) -> None:
    with _verified_lock:
        _claims.pop(name, None)


def claimed_site(version: int) -> tuple[msupply.Site, SiteProof | None]:
    """`authenticate_site`, with the site row taken from memory when there is one: (site, the proof the
    caller's statement must check), or (site, None) when the row was read afresh. Anything but a full
    success with the remembered row (another password, another device) is decided afresh."""
    name, password = _basic()
    with _verified_lock:
        site = _claims.get(name)
    if site is None:
        return authenticate_site(version), None
    account = f"site:{name}"
    had_failures = _throttled(account)
    sent = clean_text(request.headers.get(HARDWARE_HEADER, "").strip(), HARDWARE_HEADER, 256, required=False) or ""
    if sent != site.hardware_id or not _password_ok(site, password, allow_plain=version == 1):
        _forget(name)
        return authenticate_site(version), None
    _succeeded(account, had_failures)
    return site, SiteProof(site.tenant_id, site.site_id, site.name, site.password_hash, site.hardware_id)


def stale_claim(site: msupply.Site, version: int) -> msupply.Site:
    """The claimed row did not prove current: forget it and authenticate afresh (401 / 409 / 429)."""
    _forget(site.name)
    return authenticate_site(version)


def _password_ok(site: msupply.Site, sent: str, *, allow_plain: bool) -> bool:
    """check_site_password, remembering a success for VERIFIED_SECONDS (failures are never remembered)."""
    proof = _proof(site, sent, allow_plain)
    with _verified_lock:
        if _verified.get(proof):
            return True
    if not msupply.check_site_password(site, sent, allow_plain=allow_plain):
        return False
    with _verified_lock:
        _verified[proof] = True
    return True


def _basic() -> tuple[str, str]:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise Unauthorized("Basic authentication with the site name and password is required")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("the Authorization header is not valid Basic credentials") from None
    username, sep, password = decoded.partition(":")
    if not sep or not username or "\x00" in username:
        raise Unauthorized("the Authorization header is not valid Basic credentials")
    return username, password


def _redis():
    return context.redis()


def _throttled(account: str) -> bool:
    """Raises 429 while the (account, address) is throttled; else whether it has failures to clear."""
    wait, had_failures = throttle.login_check(_redis(), account, request.remote_addr)
    if wait:
        raise TooManyRequests("Too many failed login attempts; try again later", retry_after=wait)
    return had_failures


def _failed(account: str) -> None:
    throttle.login_failed(_redis(), account, request.remote_addr)


def _succeeded(account: str, had_failures: bool = True) -> None:
    throttle.login_succeeded(_redis(), account, request.remote_addr, had_failures=had_failures)


def authenticate_site(version: int) -> msupply.Site:
    """The site of the Basic credentials (a read-only row of its columns), bound to the calling device.
    Raises 401 / 409 / 429."""
    name, password = _basic()
    account = f"site:{name}"
    had_failures = _throttled(account)
    session = db.session()
    site = msupply.site_row_by_name(session, name)
    if site is None:
        burn_time(context.settings().bcrypt_rounds)
        _failed(account)
        raise Unauthorized(BAD_CREDENTIALS)
    if not _password_ok(site, password, allow_plain=version == 1):
        _failed(account)
        raise Unauthorized(BAD_CREDENTIALS)
    _succeeded(account, had_failures)
    _check_hardware(session, site)
    _remember(site)
    return site


def _check_hardware(session, site: msupply.Site) -> None:
    sent = clean_text(request.headers.get(HARDWARE_HEADER, "").strip(), HARDWARE_HEADER, 256, required=False) or ""
    if site.hardware_id is None:
        if not sent:
            return  # not bound yet and nothing to bind to
        if msupply.bind_hardware(session, site, sent):
            db.commit()  # the first device seen is remembered even if the request fails later
            return
        raise Conflict(HARDWARE_MISMATCH, code="hardware_mismatch")
    if sent != site.hardware_id:
        raise Conflict(HARDWARE_MISMATCH, code="hardware_mismatch")


def check_route(site: msupply.Site) -> None:
    """Queue endpoints name both ends: the caller must be `from_site`, this server `to_site`."""
    from_site, to_site = request.args.get("from_site"), request.args.get("to_site")
    if from_site is None or to_site is None:
        raise BadRequest("from_site and to_site are required")
    try:
        from_id, to_id = int(from_site), int(to_site)
    except ValueError:
        raise BadRequest("from_site and to_site must be integers") from None
    if from_id != site.site_id:
        raise BadRequest(f"from_site {from_id} is not the authenticated site")
    if to_id != SERVER_SITE_ID:
        raise BadRequest(f"to_site {to_id} is not this server (site {SERVER_SITE_ID})")


def authenticate_user() -> User:
    """A mobile user's login: Basic with the user name and the SHA-256 hex of the password."""
    name, password = _basic()
    account = f"user:{name}"  # the same account as /auth/login: one user, one set of counters
    _throttled(account)
    user = get_by_username(db.session(), name) if len(name) <= USERNAME_MAX else None
    if user is None:
        burn_time(context.settings().bcrypt_rounds)
        _failed(account)
        raise Unauthorized("Invalid user name or password")
    if not msupply.check_password_digest(user.password_hash, password, allow_plain=True):
        _failed(account)
        raise Unauthorized("Invalid user name or password")
    _succeeded(account)
    if user.role == "analyst":
        raise Forbidden("an analyst may only read exports")
    return user
