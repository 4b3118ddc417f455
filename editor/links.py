"""Share links: made on first use, shown again to the owner, checked, reset.

A link is `/s/<token>`; the token is the link's id (22 characters, 128 random bits)
followed by its secret (22 characters: 128 bits of an HMAC of the id under the server's
secret key). The database keeps the id and the SHA-256 of the secret, never the secret:
a copy of the database opens nothing. Deriving the secret from the id is what lets the
owner's dialog show the same links again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from django.db import IntegrityError, transaction
from django.utils.crypto import salted_hmac

from editor.models import Document, ShareLink

ID_CHARS = 22
SECRET_CHARS = 22
TOKEN_CHARS = ID_CHARS + SECRET_CHARS
_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_CHARS}}}")
KINDS = (ShareLink.EDIT, ShareLink.VIEW)


def _secret(link_id: str) -> str:
    mac = salted_hmac("tandem.share-link", link_id, algorithm="sha256").digest()
    return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _token(link: ShareLink) -> str | None:
    """The link's token, or None when the secret key changed since it was made."""
    secret = _secret(link.id)
    if not hmac.compare_digest(_hash(secret), link.secret_hash):
        return None
    return link.id + secret


def _create(doc: Document, kind: str) -> ShareLink:
    link_id = secrets.token_urlsafe(16)
    return ShareLink.objects.create(
        id=link_id, document=doc, kind=kind, secret_hash=_hash(_secret(link_id))
    )


def tokens(doc: Document) -> dict[str, str]:
    """{"edit": token, "view": token} for `doc`, making the links that do not exist yet."""
    for _attempt in range(3):
        try:
            with transaction.atomic():
                existing = {link.kind: link for link in doc.share_links.all()}
                result = {}
                for kind in KINDS:
                    link = existing.get(kind)
                    token = _token(link) if link is not None else None
                    if token is None:
                        if link is not None:
                            link.delete()  # made under another secret key: unusable
                        token = _token(_create(doc, kind))
                    assert token is not None
                    result[kind] = token
                return result
        except IntegrityError:
            continue  # another request made them at the same moment: read theirs
    raise RuntimeError("could not make the share links")


def reset(doc: Document) -> dict[str, str]:
    """New links; the old ones stop working at once (their rows are gone)."""
    with transaction.atomic():
        doc.share_links.all().delete()
        return tokens(doc)


def find(token: str) -> ShareLink | None:
    """The link a token opens, or None. The secret is compared in constant time."""
    if not _TOKEN.fullmatch(token):
        return None
    link_id, secret = token[:ID_CHARS], token[ID_CHARS:]
    link = ShareLink.objects.filter(pk=link_id).first()
    expected = link.secret_hash if link is not None else _hash("")
    matches = hmac.compare_digest(_hash(secret), expected)
    return link if matches and link is not None else None
