"""What a client can present: the owner key, and the signed cookies that remember a
sign-in or the share links someone opened.

The owner key is TANDEM_OWNER_KEY, or else generated once into the data folder
(`owner.key`, mode 0600). Cookies
are signed with the server's secret key (also in the data folder), so they survive a
restart, and are HttpOnly and SameSite=Lax.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Collection, Mapping
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse

from editor import conf

OWNER_COOKIE = "tandem_owner"
LINKS_COOKIE = "tandem_links"
COOKIES = (OWNER_COOKIE, LINKS_COOKIE)
_SALT = "tandem.access"
COOKIE_MAX_AGE = 365 * 24 * 3600
MAX_LINKS_REMEMBERED = 64  # a cookie stays far below browsers' 4 KB limit


def owner_key_path() -> Path:
    return Path(settings.DATA_DIR) / "owner.key"


@cache
def owner_key() -> str:
    """TANDEM_OWNER_KEY, which several processes of one Tandem share (as they share the
    secret key); else the key of this data folder, made on first use (mode 0600)."""
    if key := conf.OWNER_KEY.get():
        if len(key) < 22:
            # The key itself stays out of the error (and so out of logs).
            raise conf.OWNER_KEY.invalid("...", "at least 22 characters")
        return key
    path = owner_key_path()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    key = path.read_text().strip()
    if len(key) < 22:
        raise RuntimeError(f"{path} holds no usable owner key: delete it to make a new one")
    return key


def is_owner_key(candidate: str) -> bool:
    return hmac.compare_digest(candidate.encode(), owner_key().encode())


def _owner_fingerprint() -> str:
    # A new owner.key signs every owner cookie out; the cookie never holds the key itself.
    return hashlib.sha256(b"tandem-owner:" + owner_key().encode()).hexdigest()[:32]


def _signer(name: str) -> signing.TimestampSigner:
    # Our own signer rather than HttpRequest.get_signed_cookie: it reads a WebSocket
    # scope's cookies just as well.
    return signing.TimestampSigner(salt=f"{_SALT}:{name}")


def _unsign(cookies: Mapping[str, str], name: str) -> str | None:
    value = cookies.get(name)
    if not value:
        return None
    try:
        unsigned: str = _signer(name).unsign(value, max_age=COOKIE_MAX_AGE)
    except signing.BadSignature:  # tampered, expired, or signed with an older secret key
        return None
    return unsigned


def has_owner_cookie(cookies: Mapping[str, str]) -> bool:
    value = _unsign(cookies, OWNER_COOKIE)
    return value is not None and hmac.compare_digest(value, _owner_fingerprint())


def remembered_links(cookies: Mapping[str, str]) -> list[str]:
    """The ids of the share links this browser opened (reset ones included: the caller
    checks them against the database)."""
    value = _unsign(cookies, LINKS_COOKIE)
    return [v for v in value.split(",") if v][:MAX_LINKS_REMEMBERED] if value else []


def _set(response: HttpResponse, request: HttpRequest, name: str, value: str) -> None:
    response.set_cookie(
        name,
        _signer(name).sign(value),
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
    )


def sign_owner_in(response: HttpResponse, request: HttpRequest) -> None:
    _set(response, request, OWNER_COOKIE, _owner_fingerprint())


def remember_link(
    response: HttpResponse, request: HttpRequest, link_id: str, keep: Collection[str]
) -> None:
    """Add a link to this browser's grants, keeping those of the others that are in `keep`
    (the ones still live: reset links are dropped). Newest first; the oldest fall off."""
    old = remembered_links(request.COOKIES)
    ids = [link_id, *(i for i in old if i != link_id and i in keep)]
    _set(response, request, LINKS_COOKIE, ",".join(ids[:MAX_LINKS_REMEMBERED]))
