"""HTTP defences over the whole URL conf: every route, every state-changing method.

- Without the CSRF token, a browser's request (cookie-authenticated, or carrying an
  Origin header, even the server's own) is refused and changes nothing, on every route
  Django knows; with the token the same request is not refused for CSRF (so the refusal
  is the CSRF check's, not an accident of access or method).
- Every response (pages, API, exports, errors, the live view's stream) carries the
  browser defences: the Content-Security-Policy, nosniff, Referrer-Policy, COOP.

The routes are read from the URL conf, not listed here: a new route is checked the day it
is added (the test fails until it knows how to fill the new route's parameters).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.testing import HttpCommunicator
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, get_resolver, reverse

from collab import history, store
from collab.models import NamedVersion
from editor import credentials, links
from editor.asgi import application
from editor.headers import with_baseline
from editor.models import Document, ShareLink

STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
ORIGIN = "http://testserver"  # the server's own: CSRF still wants the token


def routes() -> Iterator[URLPattern]:
    for pattern in get_resolver().url_patterns:
        assert isinstance(pattern, URLPattern), pattern  # no include(): flat URL conf
        yield pattern


def path_of(pattern: URLPattern, doc: Document) -> str:
    """The route's URL for `doc`, every parameter filled with something that exists."""
    values: dict[str, Any] = {
        "doc_id": doc.id,
        "version": 1,
        "extension": "html",
        "token": links.tokens(doc)["edit"],
    }
    params = list(pattern.pattern.converters)
    unknown = set(params) - set(values)
    assert not unknown, f"{pattern.name}: teach this test to fill {unknown}"
    assert pattern.name, f"{pattern.pattern} has no name"
    return reverse(pattern.name, kwargs={p: values[p] for p in params})


def state(doc: Document) -> tuple[Any, ...]:
    """Everything a write could change."""
    text, version = store.read_document(doc.id)
    titles = sorted(Document.objects.values_list("id", "title"))
    return (
        titles,
        text,
        version,
        sorted(ShareLink.objects.values_list("id", flat=True)),
        NamedVersion.objects.count(),
    )


def doc_state(doc: Document) -> tuple[Any, ...]:
    """What a write to `doc` could change."""
    title = Document.objects.get(pk=doc.id).title
    links_of = sorted(ShareLink.objects.filter(document=doc).values_list("id", flat=True))
    named = NamedVersion.objects.filter(document_id=doc.id).count()
    return (title, *store.read_document(doc.id), links_of, named)


def send(client: Client, method: str, path: str, **headers: str) -> Any:
    """The test client's response (an HttpResponse with the test's extras)."""
    body = json.dumps({"title": "hacked", "text": "hacked", "label": "hacked", "version": 1})
    return client.generic(method, path, body, content_type="application/json", headers=headers)


def refused_for_csrf(response: HttpResponse) -> bool:
    return response.status_code == 403 and b"CSRF" in response.content


def browser(owner_cookie: bool) -> tuple[Client, str]:
    """A browser that holds the csrftoken cookie (and the owner's cookie, if asked)."""
    client = Client(enforce_csrf_checks=True)
    if owner_cookie:
        assert client.get(f"/?owner={credentials.owner_key()}").status_code == 302
    client.get("/")
    return client, client.cookies["csrftoken"].value


@pytest.mark.django_db(transaction=True)  # the text and restore go through the room
@pytest.mark.parametrize(
    ("trust_loopback", "origin"),
    [
        pytest.param(True, True, id="owner-on-loopback-with-origin"),
        pytest.param(False, False, id="owner-cookie-without-origin"),
    ],
)
def test_every_state_changing_request_without_the_csrf_token_is_refused(
    settings: Any, trust_loopback: bool, origin: bool
) -> None:
    settings.TANDEM_TRUST_LOOPBACK = trust_loopback
    doc = store.create_document("Guarded", "original text")
    links.tokens(doc)  # the share links exist (a reset would replace them)
    history.name_version(doc.id, 1, "first", "test")
    client, token = browser(owner_cookie=not trust_loopback)
    extra = {"Origin": ORIGIN} if origin else {}
    before = state(doc)
    tried = 0
    for pattern in routes():
        path = path_of(pattern, doc)
        for method in STATE_CHANGING:
            response = send(client, method, path, **extra)
            tried += 1
            # 405: the route takes no such method at all (nothing ran either).
            assert refused_for_csrf(response) or response.status_code == 405, (
                method,
                path,
                response.status_code,
                response.content[:300],
            )
            assert response.status_code != 405 or method not in allowed(client, path), (
                method,
                path,
            )
        assert state(doc) == before, f"{pattern.name} changed something without CSRF"
    assert tried == len(list(routes())) * len(STATE_CHANGING)

    # The control: with the token, no request is refused for CSRF.
    for pattern in routes():
        fresh = store.create_document("Fresh", "fresh text")
        history.name_version(fresh.id, 1, "first", "test")
        path = path_of(pattern, fresh)
        for method in STATE_CHANGING:
            response = send(client, method, path, X_CSRFToken=token, **extra)
            assert not refused_for_csrf(response), (method, pattern.name, response.content[:300])


@pytest.mark.django_db(transaction=True)
def test_no_safe_method_changes_anything_on_any_route(settings: Any) -> None:
    """GET, HEAD and OPTIONS skip the CSRF check, so none of them may change anything:
    every route, as the owner's browser (a HEAD must never reach a write branch)."""
    settings.TANDEM_TRUST_LOOPBACK = True
    doc = store.create_document("Guarded", "original text")
    links.tokens(doc)
    history.name_version(doc.id, 1, "first", "test")
    client, _token = browser(owner_cookie=False)
    before = state(doc)
    for pattern in routes():
        for method in ("GET", "HEAD", "OPTIONS"):
            response = send(client, method, path_of(pattern, doc), Origin=ORIGIN)
            assert response.status_code < 500, (method, pattern.name, response.status_code)
            assert state(doc) == before, f"{method} {pattern.name} changed something"


def allowed(client: Client, path: str) -> set[str]:
    """The methods a route says it takes (its 405's Allow header), for the check that a
    405 really means "not this method" and not a refusal in disguise."""
    response = client.generic("TRACE", path)
    return {m.strip() for m in response.get("Allow", "").split(",") if m.strip()}


# -- headers on every response ------------------------------------------------------------


def assert_defended(headers: Any, where: str) -> None:
    csp = headers.get("Content-Security-Policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("frame-ancestors") == ["'none'"], (where, csp)
    assert "default-src" in directives, (where, csp)
    for name in ("script-src", "style-src", "default-src"):
        sources = directives.get(name, [])
        assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources, (where, csp)
        assert "*" not in sources and "data:" not in sources, (where, csp)
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy") in {"same-origin", "no-referrer"}, where
    assert headers.get("Cross-Origin-Opener-Policy") == "same-origin", where
    assert headers.get("X-Frame-Options") == "DENY", where


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("trust_loopback", [True, False], ids=["owner", "stranger"])
def test_every_response_carries_the_browser_defences(settings: Any, trust_loopback: bool) -> None:
    """Every route, with every method (answers 2xx, 3xx, 4xx alike), as the owner and
    as a stranger (403 pages); plus 404s and the CSRF failure page."""
    settings.TANDEM_TRUST_LOOPBACK = trust_loopback
    client, token = browser(owner_cookie=False)
    seen: set[int] = set()
    for pattern in routes():
        doc = store.create_document("Headers", "# text")  # (a DELETE may take it)
        history.name_version(doc.id, 1, "first", "test")
        path = path_of(pattern, doc)
        for method in ("GET", "HEAD", *STATE_CHANGING):
            with_token = {"X_CSRFToken": token} if method != "POST" else {}
            response = send(client, method, path, **with_token)
            seen.add(response.status_code)
            assert_defended(response, f"{method} {path} -> {response.status_code}")
    for path in ("/no/such/page", "/d/nope/", "/static/nothing.js"):
        assert_defended(client.get(path), path)
    expected = {200, 403} if not trust_loopback else {200, 302, 403, 405}
    assert expected <= seen, seen


def test_the_export_is_a_standalone_page_that_runs_nothing(make_doc: Any, client: Client) -> None:
    doc = make_doc("Export <b>me</b>", "# Hi\n\n<script>alert(1)</script>\n")
    response = client.get(f"/d/{doc.id}/export.html")
    body = response.content.decode()
    assert response["Content-Disposition"].startswith("attachment")
    meta = '<meta http-equiv="Content-Security-Policy" content="'
    assert meta in body
    policy = html.unescape(body.split(meta, 1)[1].split('"', 1)[0])
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "'unsafe-inline'" not in policy
    assert response["Content-Security-Policy"].startswith(policy)
    assert "<script" not in body and "<link" not in body  # nothing to fetch, nothing to run
    assert "Export &lt;b&gt;me&lt;/b&gt;" in body


# -- what Django never sees -----------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_event_stream_carries_the_defences_too(settings: Any) -> None:
    """The live view's /d/<id>/events is answered by Channels, not Django; the ASGI
    wrapper (editor/headers.py) adds the headers. A refusal is enough to see them (a
    stream never ends)."""
    settings.TANDEM_TRUST_LOOPBACK = False
    for method in ("GET", "POST"):
        communicator = HttpCommunicator(application, method, "/d/some-doc/events")
        response = await communicator.get_response()
        assert response["status"] in {403, 405}
        headers = {k.decode().title(): v.decode() for k, v in response["headers"]}
        assert_defended(headers, f"{method} /d/some-doc/events")


def test_a_header_already_set_wins_over_the_baseline() -> None:
    ours = [(b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'")]
    merged = dict(with_baseline(ours))
    assert merged[b"content-security-policy"] == ours[0][1]
    assert merged[b"x-content-type-options"] == b"nosniff"


# -- the API's answers to bad input -------------------------------------------------------

BAD_BODIES: list[tuple[str, bytes]] = [
    ("application/json", b""),
    ("application/json", b"{nope"),
    ("application/json", b"[1, 2]"),
    ("application/json", b'"a string"'),
    ("application/json", b"\xff\xfe not utf-8"),
    ("application/json", json.dumps({"text": 5, "title": [], "label": {}, "cid": 7}).encode()),
    ("application/json", json.dumps({"version": -1, "label": "", "text": "\ud800"}).encode()),
    ("application/json", b'{"version": 1e999, "label": "x"}'),
    ("application/json", json.dumps({"version": 10**30, "label": "x" * 10_000}).encode()),
    ("application/json", json.dumps({"version": "1", "cid": "../../etc"}).encode()),
    ("text/plain", b"\xff\xfe not utf-8"),
    ("application/x-www-form-urlencoded", b"title=x&text=y"),
    ("multipart/form-data; boundary=zzz", b"--zzz\r\nContent-Disposition: form-data\r\n\r\n"),
    ("multipart/form-data", b"no boundary at all"),
    ("multipart/form-data; boundary=zzz", b"--zzz--\r\n"),
]


def api_routes() -> list[URLPattern]:
    return [p for p in routes() if str(p.pattern).startswith("api/")]


@pytest.mark.django_db(transaction=True)
def test_the_api_answers_bad_input_with_clear_json_errors(client: Client) -> None:
    """Every API route, every method, every bad body: never a 5xx or an HTML page; a
    refusal is a 4xx with a JSON {"error"} and changes nothing."""
    doc = store.create_document("Kept", "kept text")
    links.tokens(doc)  # (path_of makes them)
    answered: set[int] = set()
    for pattern in api_routes():
        path = path_of(pattern, doc)
        for method in ("GET", "POST", "PUT", "PATCH"):  # (a DELETE takes no body)
            for content_type, body in BAD_BODIES:
                before = doc_state(doc)
                response = client.generic(method, path, body, content_type=content_type)
                where = (method, path, content_type, body[:40], response.status_code)
                assert response.status_code < 500, (where, response.content[:300])
                if response.status_code >= 400:
                    answered.add(response.status_code)
                    assert response["Content-Type"] == "application/json", where
                    assert isinstance(response.json().get("error"), str), where
                    assert doc_state(doc) == before, ("refused, yet changed", where)
    assert {400, 405, 415} <= answered, answered


@pytest.mark.django_db
def test_unknown_api_addresses_answer_json_404(client: Client) -> None:
    response = client.get("/api/nothing/here")
    assert response.status_code == 404 and "error" in response.json()
    assert client.get("/no/page").status_code == 404  # pages keep the HTML 404 page
    assert "Nothing here" in client.get("/no/page").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/documents/", "/api/documents/import", "/d/new/", "/api/documents/x/text"]
)
def test_a_body_over_the_limit_is_refused_before_anything_reads_it(
    client: Client, path: str
) -> None:
    from editor.limits import MAX_REQUEST_BYTES

    response = client.generic(
        "POST",
        path,
        b"{}",
        content_type="application/json",
        CONTENT_LENGTH=str(MAX_REQUEST_BYTES + 1),
    )
    assert response.status_code == 413
    if path.startswith("/api/"):
        assert "larger than" in response.json()["error"]
    assert_defended(response, path)
    assert Document.objects.count() == 0


# -- templates the policy would break ----------------------------------------------------


def test_no_template_has_inline_script_or_style_attributes() -> None:
    """The policy blocks inline scripts and style attributes: a template with one would
    break in the browser (e2e/test_csp.py finds it there; this says where, at once)."""
    from django.conf import settings

    for path in Path(settings.BASE_DIR, "templates").rglob("*.html"):
        source = path.read_text()
        assert not re.search(r"\sstyle=", source), f"{path}: a style attribute"
        for tag in re.findall(r"<script\b[^>]*>", source):
            ok = "src=" in tag or 'type="importmap" nonce=' in tag or "json" in tag
            assert ok, f"{path}: inline script {tag}"
        assert not re.search(r"\son[a-z]+=", source), f"{path}: an event-handler attribute"
    error_page = Path(settings.BASE_DIR, "templates", "500.html").read_text()
    for href in re.findall(r'href="/static/([^"]+)"', error_page):
        assert Path(settings.BASE_DIR, "static", href).is_file(), href
