"""Sharing through HTTP: the 403 pages, share links, the owner link, the links API, what
editors and viewers may do, CSRF. The server runs with TANDEM_TRUST_LOOPBACK=0 here, so
the test client is a guest unless it signs in."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from collab import store
from editor import credentials, links, network
from editor.models import Document
from editor.throttle import limiter
from tests.conftest import htmx
from tests.html import parse

pytestmark = pytest.mark.django_db
JSON = "application/json"


@pytest.fixture(autouse=True)
def _guests(settings: Any) -> None:
    settings.TANDEM_TRUST_LOOPBACK = False
    limiter.clear()


def owner_client() -> Client:
    client = Client()
    response = client.get(f"/?owner={credentials.owner_key()}")
    assert response.status_code == 302 and response["Location"] == "/"
    return client


def guest(token: str) -> Client:
    client = Client()
    response = client.get(f"/s/{token}")
    assert response.status_code == 302, response.content[:300]
    return client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_without_a_link_pages_api_and_exports_answer_403(make_doc: Any) -> None:
    doc = make_doc("Secret", "text")
    client = Client()
    for path in ["/", f"/d/{doc.id}/", f"/d/{doc.id}/export.md", f"/d/{doc.id}/share/"]:
        response = client.get(path)
        assert response.status_code == 403, path
    page = client.get(f"/d/{doc.id}/").content.decode()
    assert "Ask the person who shared it" in page and "Secret" not in page
    for path in ["/api/documents/", f"/api/documents/{doc.id}/", f"/api/documents/{doc.id}/links"]:
        response = client.get(path)
        assert response.status_code == 403 and "error" in response.json(), path
    assert client.post("/d/new/", {"title": "x"}).status_code == 403
    assert Document.objects.count() == 1


def test_the_owner_link_signs_in_and_a_wrong_one_is_refused(make_doc: Any) -> None:
    make_doc("Mine")
    assert Client().get("/?owner=wrong").status_code == 403
    client = owner_client()
    response = client.get("/")
    assert response.status_code == 200 and "Mine" in response.content.decode()
    assert "new-document" in parse(response.content).by_id


def test_a_share_link_sets_a_cookie_and_redirects_to_the_clean_url(make_doc: Any) -> None:
    doc = make_doc("Plan", "# Plan")
    token = links.tokens(doc)["edit"]
    client = Client()
    response = client.get(f"/s/{token}")
    assert response.status_code == 302
    assert response["Location"] == f"/d/{doc.id}/"
    assert response["Referrer-Policy"] == "no-referrer"
    cookie = response.cookies[credentials.LINKS_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and token not in cookie.value
    page = client.get(f"/d/{doc.id}/")
    assert page.status_code == 200 and 'data-role="editor"' in page.content.decode()


def test_a_guest_lists_only_the_documents_shared_with_them(make_doc: Any) -> None:
    shared, _other = make_doc("Shared one"), make_doc("Not shared")
    client = guest(links.tokens(shared)["view"])
    body = client.get("/").content.decode()
    assert "Shared one" in body and "Not shared" not in body
    assert "new-document" not in parse(body.encode()).by_id
    listed = client.get("/api/documents/").json()["documents"]
    assert [d["id"] for d in listed] == [shared.id]


def test_a_viewer_reads_and_downloads_but_changes_nothing(make_doc: Any) -> None:
    doc = make_doc("Report", "# Report")
    view = links.tokens(doc)["view"]
    client = guest(view)
    page = client.get(f"/d/{doc.id}/").content.decode()
    assert 'data-role="viewer"' in page and 'id="read-only"' in page
    assert 'id="share"' not in page
    assert parse(page.encode()).by_id["editor"].attrs.get("readonly") is not None
    assert client.get(f"/d/{doc.id}/export.md").content == b"# Report"
    assert client.post(f"/d/{doc.id}/rename/", {"title": "Mine now"}).status_code == 403
    assert client.post(f"/d/{doc.id}/delete/").status_code == 403
    response = Client().put(
        f"/api/documents/{doc.id}/text", "changed", content_type="text/plain", headers=bearer(view)
    )
    assert response.status_code == 403 and "view-only" in response.json()["error"]
    doc.refresh_from_db()
    assert doc.title == "Report" and store.read_document(doc.id) == ("# Report", 1)


@pytest.mark.django_db(transaction=True)  # PUT text goes through the room
def test_an_editor_edits_and_renames_but_does_not_delete_or_share(make_doc: Any) -> None:
    doc = make_doc("Draft", "a")
    edit = links.tokens(doc)["edit"]
    client = guest(edit)
    assert (
        client.post(f"/d/{doc.id}/rename/", {"title": "Better"}, headers=htmx("title")).status_code
        == 200
    )
    doc.refresh_from_db()
    assert doc.title == "Better"
    api = Client()
    response = api.put(
        f"/api/documents/{doc.id}/text", "b", content_type="text/plain", headers=bearer(edit)
    )
    assert response.status_code == 200 and store.read_document(doc.id)[0] == "b"
    assert client.post(f"/d/{doc.id}/delete/").status_code == 403
    assert api.delete(f"/api/documents/{doc.id}/", headers=bearer(edit)).status_code == 403
    assert api.get(f"/api/documents/{doc.id}/links", headers=bearer(edit)).status_code == 403
    assert client.get(f"/d/{doc.id}/share/").status_code == 403
    assert Document.objects.filter(pk=doc.id).exists()


def test_a_link_opens_only_its_own_document(make_doc: Any) -> None:
    doc, other = make_doc("One"), make_doc("Two")
    client = guest(links.tokens(doc)["edit"])
    assert client.get(f"/d/{other.id}/").status_code == 403
    assert client.get(f"/d/{other.id}/export.txt").status_code == 403
    assert client.post(f"/d/{other.id}/rename/", {"title": "x"}).status_code == 403


def test_links_api_gives_absolute_urls_and_reset_replaces_them(make_doc: Any) -> None:
    doc = make_doc()
    api = Client()
    key = bearer(credentials.owner_key())
    first = api.get(f"/api/documents/{doc.id}/links", headers=key).json()
    assert first["edit"].startswith("http://testserver/s/") and first["view"] != first["edit"]
    assert api.get(f"/api/documents/{doc.id}/links", headers=key).json() == first
    old_guest = guest(first["view"].rsplit("/", 1)[1])
    new = api.post(f"/api/documents/{doc.id}/links/reset", headers=key).json()
    assert new["edit"] != first["edit"] and new["view"] != first["view"]
    assert old_guest.get(f"/d/{doc.id}/").status_code == 403
    assert Client().get(first["edit"].removeprefix("http://testserver")).status_code == 403
    assert guest(new["edit"].rsplit("/", 1)[1]).get(f"/d/{doc.id}/").status_code == 200


def test_the_share_dialog_shows_links_with_qr_codes_and_resets_them(make_doc: Any) -> None:
    doc = make_doc("Notes")
    client = owner_client()
    body = client.get(f"/d/{doc.id}/share/").content.decode()
    page = parse(body.encode())
    edit_url = page.by_id["share-edit"].attrs["value"]
    assert edit_url.startswith("http://testserver/s/") and "<svg" in body
    after = client.post(f"/d/{doc.id}/share/reset/", headers=htmx("share-body"))
    assert parse(after.content).by_id["share-edit"].attrs["value"] != edit_url


def test_on_loopback_only_the_dialog_says_how_to_share(make_doc: Any, settings: Any) -> None:
    settings.TANDEM_TRUST_LOOPBACK = True
    network.set_listening("127.0.0.1", 8000)
    try:
        body = Client().get(f"/d/{make_doc().id}/share/").content.decode()
    finally:
        network._listening = None
    assert "share-local" in body and "scripts/run --share<" in body and "/s/" not in body
    network.set_listening("127.0.0.1", 8765)  # started on another port: the same again
    try:
        body = Client().get(f"/d/{make_doc().id}/share/").content.decode()
    finally:
        network._listening = None
    assert "scripts/run --share --port 8765<" in body


def test_guessing_links_is_rate_limited(make_doc: Any) -> None:
    doc = make_doc()
    client = Client()
    for _ in range(limiter.max_failures):
        assert client.get("/s/" + "A" * 44).status_code == 403
    response = client.get(f"/s/{links.tokens(doc)['edit']}")  # even a good one, for now
    assert response.status_code == 429 and int(response["Retry-After"]) > 0


@pytest.mark.django_db(transaction=True)  # PUT text goes through the room
def test_cookie_authenticated_api_writes_need_the_csrf_token(make_doc: Any) -> None:
    doc = make_doc("Doc", "x")
    client = Client(enforce_csrf_checks=True)
    assert client.get(f"/s/{links.tokens(doc)['edit']}").status_code == 302
    refused = client.put(f"/api/documents/{doc.id}/text", "evil", content_type="text/plain")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
    client.get(f"/d/{doc.id}/")  # the page sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    ok = client.put(
        f"/api/documents/{doc.id}/text",
        "fine",
        content_type="text/plain",
        headers={"X-CSRFToken": token},
    )
    assert ok.status_code == 200 and store.read_document(doc.id)[0] == "fine"


def test_bearer_writes_need_no_csrf_token(make_doc: Any) -> None:
    doc = make_doc()
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/api/documents/",
        json.dumps({"title": "By script"}),
        content_type=JSON,
        headers=bearer(credentials.owner_key()),
    )
    assert response.status_code == 201
    assert doc.id != response.json()["id"]


def test_a_cross_site_browser_post_to_loopback_is_refused(settings: Any, make_doc: Any) -> None:
    # The owner's own browser, on a page of another site: no cookie needed on loopback,
    # so the Origin header is what gives it away.
    settings.TANDEM_TRUST_LOOPBACK = True
    doc = make_doc()
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        f"/api/documents/{doc.id}/links/reset", headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403 and "CSRF" in response.json()["error"]
    assert not doc.share_links.exists()
    # A script on this machine (no Origin, no cookie) is the owner, as before.
    assert (
        Client(enforce_csrf_checks=True).post(f"/api/documents/{doc.id}/links/reset").status_code
        == 200
    )


def test_one_browser_holds_several_links_and_forgets_reset_ones(make_doc: Any) -> None:
    first, second, third = make_doc("First"), make_doc("Second"), make_doc("Third")
    client = guest(links.tokens(first)["view"])
    old_second = links.tokens(second)["edit"]
    assert client.get(f"/s/{old_second}").status_code == 302
    links.reset(second)
    assert client.get(f"/s/{links.tokens(third)['edit']}").status_code == 302
    remembered = credentials.remembered_links(
        {credentials.LINKS_COOKIE: client.cookies[credentials.LINKS_COOKIE].value}
    )
    assert old_second[: links.ID_CHARS] not in remembered and len(remembered) == 2
    titles = client.get("/").content.decode()
    assert "First" in titles and "Third" in titles and "Second" not in titles
