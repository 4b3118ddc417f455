"""Who may do what: the one place that decides access.

A request or a WebSocket scope is mapped to a `Principal` (the owner, or a guest holding
share links), which gives a `Role` per document; `may(role, action)` answers the rest.
Pages, the JSON API, exports and the WebSocket consumer all ask here. docs/security.md
describes the model.

The owner is: a request from this machine (loopback) while TANDEM_TRUST_LOOPBACK is on,
a browser holding the owner cookie (`/?owner=<key>`), or `Authorization: Bearer <owner
key>`. A guest holds share links: as the signed cookie that `/s/<token>` sets, or as
`Authorization: Bearer <token>`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http.cookies import CookieError
from typing import Any

from django.conf import settings
from django.core.exceptions import DisallowedHost, PermissionDenied
from django.http import HttpRequest
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host

from editor import credentials, links
from editor.models import ShareLink
from editor.throttle import limiter


class Role(StrEnum):
    OWNER = "owner"
    EDITOR = "editor"
    VIEWER = "viewer"
    NONE = "none"


class Action(StrEnum):
    READ = "read"  # the page, the text, the live preview and presence
    EXPORT = "export"  # the .md, .txt and .html downloads
    EDIT = "edit"  # change the text: a sync with ops, undo/redo, PUT text
    RENAME = "rename"  # change the title
    DELETE = "delete"
    SHARE = "share"  # see, make and reset the document's links
    HISTORY = "history"  # the history panel, past versions, their changes, the live view
    RESTORE = "restore"  # make the text equal to a past version (a new change)
    NAME_VERSION = "name_version"  # "Save version" with a label
    # Not tied to one document (asked of `Principal.general_role`):
    LIST = "list"  # the document list: of the documents one holds links for
    LIST_ALL = "list_all"  # ... of every document
    CREATE = "create"  # make new documents
    IMPORT = "import"  # make new documents from uploaded files


_READER = frozenset({Action.READ, Action.EXPORT, Action.LIST, Action.HISTORY})
_EDITOR = _READER | {Action.EDIT, Action.RENAME, Action.RESTORE, Action.NAME_VERSION}
PERMISSIONS: Mapping[Role, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.EDITOR: _EDITOR,
    Role.VIEWER: _READER,
    Role.NONE: frozenset(),
}
_RANK = {Role.NONE: 0, Role.VIEWER: 1, Role.EDITOR: 2, Role.OWNER: 3}
_LINK_ROLES = {ShareLink.EDIT: Role.EDITOR, ShareLink.VIEW: Role.VIEWER}


def may(role: Role, action: Action) -> bool:
    return action in PERMISSIONS[role]


class BadCredentials(Exception):
    """An Authorization header that is malformed, or names no owner key or live link."""


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed attempts: try again in {retry_after} s.")
        self.retry_after = retry_after


def _host(request: HttpRequest) -> str:
    try:
        return request.get_host()
    except DisallowedHost:
        return ""


@dataclass(frozen=True)
class Credentials:
    """What a client presented, read alike from an HTTP request and a WebSocket scope."""

    peer: str | None  # the client's address; None for a Unix socket or an in-process test
    host: str  # the Host header
    cookies: Mapping[str, str]
    authorization: str | None

    @classmethod
    def from_request(cls, request: HttpRequest) -> Credentials:
        return cls(
            peer=request.META.get("REMOTE_ADDR") or None,
            host=_host(request),
            cookies=request.COOKIES,
            authorization=request.META.get("HTTP_AUTHORIZATION"),
        )

    @classmethod
    def from_scope(cls, scope: Mapping[str, Any]) -> Credentials:
        headers: dict[str, str] = {}
        for key, value in scope.get("headers", []):
            headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
        try:
            cookies = parse_cookie(headers.get("cookie", ""))
        except CookieError:
            cookies = {}
        client = scope.get("client")
        return cls(
            peer=str(client[0]) if client else None,
            host=headers.get("host", ""),
            cookies=cookies,
            authorization=headers.get("authorization"),
        )

    @property
    def address(self) -> str:
        """The key for rate limiting."""
        return self.peer or "local"


@dataclass(frozen=True)
class Principal:
    """Who is asking: the owner, or a guest with a role per document."""

    owner: bool = False
    grants: Mapping[str, Role] = field(default_factory=dict)
    bearer: bool = False  # authenticated by an Authorization header, not by the browser

    def role(self, doc_id: str) -> Role:
        if self.owner:
            return Role.OWNER
        return self.grants.get(doc_id, Role.NONE)

    def may(self, doc_id: str, action: Action) -> bool:
        return may(self.role(doc_id), action)

    @property
    def general_role(self) -> Role:
        """The role for what concerns no one document: the owner's, or a guest's best."""
        if self.owner:
            return Role.OWNER
        return max(self.grants.values(), key=_RANK.__getitem__, default=Role.NONE)

    @property
    def documents(self) -> list[str]:
        """The documents a guest holds links for."""
        return list(self.grants)


NOBODY = Principal()


def is_loopback_address(value: str) -> bool:
    try:
        address = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _trusted_host(host: str) -> bool:
    """A Host a page from another site cannot have reached us by (DNS rebinding): a
    loopback name, or one of an explicit ALLOWED_HOSTS (not the "*" of `serve --share`)."""
    domain, _port = split_domain_port(host)
    if not domain:
        return False
    if domain == "localhost" or is_loopback_address(domain):
        return True
    return "*" not in settings.ALLOWED_HOSTS and validate_host(domain, settings.ALLOWED_HOSTS)


def is_local(creds: Credentials) -> bool:
    """A request from this machine, trusted as the owner's (TANDEM_TRUST_LOOPBACK)."""
    if not settings.TANDEM_TRUST_LOOPBACK:
        return False
    # No peer address: a Unix socket or an in-process test client, both on this machine.
    local_peer = creds.peer is None or is_loopback_address(creds.peer)
    return local_peer and _trusted_host(creds.host)


def _grants(link_ids: list[str]) -> dict[str, Role]:
    grants: dict[str, Role] = {}
    for link in ShareLink.objects.filter(pk__in=link_ids):
        role = _LINK_ROLES[link.kind]
        if _RANK[role] > _RANK[grants.get(link.document_id, Role.NONE)]:
            grants[link.document_id] = role
    return grants


def _bearer_token(creds: Credentials) -> str | None:
    """The token of `Authorization: Bearer <token>`; other schemes (a proxy's Basic
    authentication) are not ours and are ignored."""
    scheme, _, token = (creds.authorization or "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _bearer(creds: Credentials, token: str) -> Principal:
    if limiter.blocked(creds.address):
        raise Throttled(limiter.retry_after(creds.address))
    if token:
        if credentials.is_owner_key(token):
            return Principal(owner=True, bearer=True)
        link = links.find(token)
        if link is not None:
            return Principal(grants={link.document_id: _LINK_ROLES[link.kind]}, bearer=True)
    limiter.failed(creds.address)
    raise BadCredentials(
        "The bearer token is neither the owner key nor a live share link's token "
        "(a reset link stops working)."
    )


def identify(creds: Credentials) -> Principal:
    """Who presented `creds` (database reads: call it off the event loop).

    Raises BadCredentials or Throttled for a bad Authorization header: a script that sends
    one must hear that it is wrong, not fall back to what its address would allow.
    """
    token = _bearer_token(creds)
    if token is not None:
        return _bearer(creds, token)
    if is_local(creds) or credentials.has_owner_cookie(creds.cookies):
        return Principal(owner=True)
    link_ids = credentials.remembered_links(creds.cookies)
    return Principal(grants=_grants(link_ids)) if link_ids else NOBODY


def principal(request: HttpRequest) -> Principal:
    """The request's principal (worked out once per request)."""
    cached: Principal | None = getattr(request, "_tandem_principal", None)
    if cached is None:
        cached = identify(Credentials.from_request(request))
        request._tandem_principal = cached  # type: ignore[attr-defined]
    return cached


def scope_role(scope: Mapping[str, Any], doc_id: str) -> Role:
    """The role of a WebSocket connection (sync: wrap in database_sync_to_async)."""
    try:
        return identify(Credentials.from_scope(scope)).role(doc_id)
    except (BadCredentials, Throttled):
        return Role.NONE


def scope_via(scope: Mapping[str, Any], doc_id: str) -> str:
    """Which share link a WebSocket connection came through, for the authors in the
    document's history ("edit link Ab3dE9": the start of the link's id, which the owner's
    links share); "" for the owner (sync: wrap in database_sync_to_async)."""
    creds = Credentials.from_scope(scope)
    try:
        if identify(creds).owner:
            return ""
    except (BadCredentials, Throttled):
        return ""
    token = _bearer_token(creds)
    if token is not None:
        found = links.find(token)
        link_ids = [found.pk] if found is not None else []
    else:
        link_ids = credentials.remembered_links(creds.cookies)
    link = (
        ShareLink.objects.filter(pk__in=link_ids, document_id=doc_id, kind=ShareLink.EDIT)
        .order_by("pk")
        .first()
    )
    return f"edit link {link.pk[:6]}" if link is not None else ""


def require(request: HttpRequest, doc_id: str | None, action: Action) -> Principal:
    """The request's principal, if it may do `action` (on `doc_id`, or on no document for
    LIST, LIST_ALL, CREATE and IMPORT); else PermissionDenied, which Django answers with the
    403 page."""
    try:
        who = principal(request)
    except (BadCredentials, Throttled) as error:
        raise PermissionDenied(str(error)) from None
    role = who.role(doc_id) if doc_id is not None else who.general_role
    if not may(role, action):
        raise PermissionDenied(refusal(role, action))
    return who


def refusal(role: Role, action: Action) -> str:
    if role is Role.NONE:
        return "You need a link to open this. Ask the person who shared it with you for one."
    if role is Role.VIEWER:
        return "Your link is view-only: you can read and download, not change."
    return "Only the person who shares this document can do that."
