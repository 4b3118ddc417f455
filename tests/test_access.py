"""editor.access: the table of who may do what, and who a request or a scope is."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from editor import access, credentials, links
from editor.access import Action, BadCredentials, Credentials, Principal, Role, Throttled
from editor.models import ShareLink
from editor.throttle import FailureLimiter, limiter

# Every role against every action: the whole table, written out, so a change to
# PERMISSIONS that is not also made here fails.
EXPECTED: dict[Role, set[Action]] = {
    Role.OWNER: set(Action),
    Role.EDITOR: {
        Action.READ,
        Action.EXPORT,
        Action.EDIT,
        Action.RENAME,
        Action.LIST,
        Action.HISTORY,
        Action.RESTORE,
        Action.NAME_VERSION,
    },
    Role.VIEWER: {Action.READ, Action.EXPORT, Action.LIST, Action.HISTORY},
    Role.NONE: set(),
}


@pytest.mark.parametrize(("role", "action"), list(itertools.product(Role, Action)))
def test_the_access_table(role: Role, action: Action) -> None:
    assert access.may(role, action) is (action in EXPECTED[role])


def test_the_table_names_every_role() -> None:
    assert set(access.PERMISSIONS) == set(Role) == set(EXPECTED)


def test_only_the_owner_deletes_shares_creates_and_sees_everything() -> None:
    owner_only = {Action.DELETE, Action.SHARE, Action.CREATE, Action.IMPORT, Action.LIST_ALL}
    for role in Role:
        assert all(access.may(role, a) is (role is Role.OWNER) for a in owner_only)


def test_a_guest_has_a_role_per_document_and_none_elsewhere() -> None:
    guest = Principal(grants={"a": Role.EDITOR, "b": Role.VIEWER})
    assert (guest.role("a"), guest.role("b"), guest.role("c")) == (
        Role.EDITOR,
        Role.VIEWER,
        Role.NONE,
    )
    assert guest.general_role is Role.EDITOR
    assert Principal(owner=True).role("anything") is Role.OWNER
    assert access.NOBODY.general_role is Role.NONE


# -- who is asking --------------------------------------------------------------------
def creds(peer: str | None = "127.0.0.1", host: str = "localhost:8000", **kw: Any) -> Credentials:
    return Credentials(
        peer=peer, host=host, cookies=kw.get("cookies", {}), authorization=kw.get("auth")
    )


@pytest.fixture(autouse=True)
def _fresh_limiter() -> None:
    limiter.clear()


@pytest.mark.parametrize(
    ("peer", "host", "local"),
    [
        ("127.0.0.1", "localhost:8000", True),
        ("127.0.0.1", "127.0.0.1:8000", True),
        ("::1", "[::1]:8000", True),
        ("::ffff:127.0.0.1", "127.0.0.1", True),
        (None, "localhost", True),  # a Unix socket or an in-process client
        ("192.168.1.20", "192.168.1.5:8000", False),
        ("10.0.0.7", "localhost:8000", False),
    ],
)
def test_loopback_is_the_owner(peer: str | None, host: str, local: bool) -> None:
    assert access.is_local(creds(peer, host)) is local


def test_trust_loopback_off_makes_this_machine_a_guest(settings: Any) -> None:
    settings.TANDEM_TRUST_LOOPBACK = False
    assert not access.is_local(creds())


def test_a_dns_rebinding_page_is_not_the_owner_when_any_host_is_served(settings: Any) -> None:
    # serve --share allows any Host; a page of evil.example rebound to 127.0.0.1 reaches
    # us from loopback with its own name in Host.
    settings.ALLOWED_HOSTS = ["*"]
    assert not access.is_local(creds("127.0.0.1", "evil.example:8000"))
    assert access.is_local(creds("127.0.0.1", "localhost:8000"))


def test_scope_credentials_read_client_host_cookies_and_authorization() -> None:
    scope = {
        "client": ["10.1.2.3", 5555],
        "headers": [
            (b"host", b"tandem.lan:8000"),
            (b"cookie", b"a=1; tandem_links=xyz"),
            (b"authorization", b"Bearer t"),
        ],
    }
    c = Credentials.from_scope(scope)
    assert (c.peer, c.host, c.cookies["tandem_links"], c.authorization) == (
        "10.1.2.3",
        "tandem.lan:8000",
        "xyz",
        "Bearer t",
    )
    assert Credentials.from_scope({"headers": []}).peer is None


# -- owner key and cookies ------------------------------------------------------------
def test_owner_key_is_made_once_and_private() -> None:
    key = credentials.owner_key()
    path = credentials.owner_key_path()
    assert path.read_text().strip() == key and len(key) >= 43
    assert path.stat().st_mode & 0o777 == 0o600
    assert credentials.is_owner_key(key) and not credentials.is_owner_key(key[:-1] + "x")


def _cookies(response: HttpResponse) -> dict[str, str]:
    return {name: morsel.value for name, morsel in response.cookies.items()}


def test_owner_cookie_makes_the_owner_and_a_forged_one_does_not(settings: Any) -> None:
    settings.TANDEM_TRUST_LOOPBACK = False
    response = HttpResponse()
    credentials.sign_owner_in(response, RequestFactory().get("/"))
    morsel = response.cookies[credentials.OWNER_COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Lax"
    assert access.identify(creds(cookies=_cookies(response))).owner
    forged = {credentials.OWNER_COOKIE: morsel.value[:-2] + "xx"}
    assert access.identify(creds(cookies=forged)) == access.NOBODY


@pytest.mark.django_db
def test_bearer_owner_key_and_link_tokens(settings: Any, make_doc: Any) -> None:
    settings.TANDEM_TRUST_LOOPBACK = False
    doc = make_doc("Shared")
    tokens = links.tokens(doc)
    owner = access.identify(creds(auth=f"Bearer {credentials.owner_key()}"))
    assert owner.owner and owner.bearer
    editor = access.identify(creds(auth=f"Bearer {tokens['edit']}"))
    viewer = access.identify(creds(auth=f"bearer {tokens['view']}"))
    assert (editor.role(doc.id), viewer.role(doc.id)) == (Role.EDITOR, Role.VIEWER)
    assert editor.role("other") is Role.NONE and not editor.owner
    with pytest.raises(BadCredentials):
        access.identify(creds(auth="Bearer " + "A" * 44))
    # Another scheme (a proxy's Basic authentication) is not ours: ignored.
    assert access.identify(creds(auth="Basic dXNlcjpwdw==")) == access.NOBODY


@pytest.mark.django_db
def test_a_bad_bearer_token_from_loopback_is_refused_not_treated_as_the_owner() -> None:
    with pytest.raises(BadCredentials):
        access.identify(creds(auth="Bearer wrong"))


@pytest.mark.django_db
def test_failed_attempts_are_limited_per_address() -> None:
    for _ in range(limiter.max_failures):
        with pytest.raises(BadCredentials):
            access.identify(creds("10.0.0.9", auth="Bearer wrong"))
    with pytest.raises(Throttled) as refused:
        access.identify(creds("10.0.0.9", auth=f"Bearer {credentials.owner_key()}"))
    assert refused.value.retry_after > 0
    # Another address is not affected.
    assert access.identify(creds("10.0.0.10", auth=f"Bearer {credentials.owner_key()}")).owner


def test_the_limiter_forgets_after_its_window() -> None:
    now = [0.0]
    lim = FailureLimiter(max_failures=2, window=10, clock=lambda: now[0])
    lim.failed("a")
    lim.failed("a")
    assert lim.blocked("a") and lim.retry_after("a") > 0 and not lim.blocked("b")
    now[0] = 10.5
    assert not lim.blocked("a") and lim.retry_after("a") == 0


# -- links ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_links_are_random_stored_as_hashes_and_shown_again(make_doc: Any) -> None:
    doc = make_doc()
    first = links.tokens(doc)
    assert links.tokens(doc) == first  # the dialog shows the same links again
    assert first["edit"] != first["view"]
    for token in first.values():
        assert len(token) == links.TOKEN_CHARS == 44
        link = links.find(token)
        assert link is not None and link.document_id == doc.id
        row = ShareLink.objects.filter(pk=link.id).values().get()  # what the database holds
        assert all(token[links.ID_CHARS :] not in str(value) for value in row.values())
    assert links.find(first["edit"][:-1] + ("A" if first["edit"][-1] != "A" else "B")) is None
    assert links.find("short") is None and links.find("!" * 44) is None


@pytest.mark.django_db
def test_reset_stops_the_old_links_at_once(make_doc: Any) -> None:
    doc = make_doc()
    old = links.tokens(doc)
    new = links.reset(doc)
    assert set(old.values()).isdisjoint(new.values())
    assert all(links.find(t) is None for t in old.values())
    assert all(links.find(t) is not None for t in new.values())


@pytest.mark.django_db
def test_links_made_under_another_secret_key_are_replaced(make_doc: Any, settings: Any) -> None:
    doc = make_doc()
    old = links.tokens(doc)
    settings.SECRET_KEY = "another secret key, as after deleting data/secret_key"
    new = links.tokens(doc)
    assert set(old.values()).isdisjoint(new.values())
    assert links.find(old["edit"]) is None and links.find(new["edit"]) is not None


def test_trust_loopback_reads_yes_or_no_and_refuses_anything_else() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from editor.conf import TRUST_LOOPBACK

    assert TRUST_LOOPBACK.get({}) is True
    for value, expected in [("0", False), ("off", False), ("1", True), (" Yes ", True)]:
        assert TRUST_LOOPBACK.get({"TANDEM_TRUST_LOOPBACK": value}) is expected
    with pytest.raises(ImproperlyConfigured, match="TANDEM_TRUST_LOOPBACK"):
        TRUST_LOOPBACK.get({"TANDEM_TRUST_LOOPBACK": "maybe"})
