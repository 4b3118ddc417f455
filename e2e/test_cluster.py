"""Two `serve` processes on one PostgreSQL and one Redis (the `cluster` fixture): both
serve, and what one stores the other reads. Co-editing across processes is tested with
the rooms (the WebSocket tests of the multi-process core)."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

from e2e.client import HttpClient
from e2e.cluster import Cluster


def test_both_processes_serve_and_share_one_database(cluster: Cluster) -> None:
    a, b = cluster
    for server in cluster:
        with urllib.request.urlopen(server.url + "/", timeout=10) as response:
            assert response.status == 200
            assert b"Documents" in response.read()
        # Started together on an empty database: both migrated (one after the other)
        # and neither made a SQLite database of its own.
        assert "Traceback" not in server.output(), cluster.logs()
        assert not (server.data_dir / "tandem.sqlite3").exists()

    on_a, on_b = HttpClient(a.url), HttpClient(b.url)
    created = on_a.post("/api/documents/", json_body={"title": "Shared", "text": "# Hi\nthere"})
    assert created.status == 201, created.text
    doc_id = created.json()["id"]

    seen = on_b.get(f"/api/documents/{doc_id}/")
    assert seen.status == 200, seen.text
    assert (seen.json()["title"], seen.json()["text"]) == ("Shared", "# Hi\nthere")
    assert seen.json()["version"] == on_a.get(f"/api/documents/{doc_id}/").json()["version"]
    assert "Shared" in on_b.get("/").text

    # And the other way: a document made with B's form is in A's list and API.
    form = on_b.post("/d/new/", form={"title": "From B"})
    assert form.status == 200 and "/d/" in form.url, form.status
    other_id = form.url.rstrip("/").rsplit("/", 1)[-1]
    assert on_a.get(f"/api/documents/{other_id}/").json()["title"] == "From B"
    listed = {d["id"] for d in on_a.get("/api/documents/").json()["documents"]}
    assert {doc_id, other_id} <= listed


def test_a_killed_process_comes_back_on_the_same_port_and_data(cluster: Cluster) -> None:
    a, b = cluster
    doc_id = HttpClient(a.url).post("/api/documents/", json_body={"title": "Kept"}).json()["id"]
    cluster.kill(0)
    assert not a.running
    # The other process goes on serving meanwhile.
    assert HttpClient(b.url).get(f"/api/documents/{doc_id}/").json()["title"] == "Kept"
    cluster.restart(0)
    assert a.running and "Tandem is running" in cluster.log(0)
    assert HttpClient(a.url).get(f"/api/documents/{doc_id}/").json()["title"] == "Kept"


def test_forms_of_an_https_page_pass_through_a_tls_proxy(cluster: Cluster) -> None:
    """TANDEM_BEHIND_PROXY=1 (docs/deploy.md): the proxy's X-Forwarded-Proto makes an
    https page's POST same-origin for Django's CSRF check; without it, it is refused."""
    for server in cluster:
        client = HttpClient(server.url)
        page_origin = {"Origin": f"https://127.0.0.1:{server.port}"}
        refused = client.post("/d/new/", form={"title": "x"}, headers=page_origin)
        assert refused.status == 403
        proxied = {**page_origin, "X-Forwarded-Proto": "https"}
        made = client.post("/d/new/", form={"title": "Through TLS"}, headers=proxied)
        assert made.status == 200 and "/d/" in made.url, made.status


def test_the_owner_signed_in_on_one_process_is_the_owner_on_every_one(
    make_cluster: Callable[..., Cluster],
) -> None:
    """Behind a proxy on the same machine (TANDEM_TRUST_LOOPBACK=0, docs/deploy.md) the
    owner signs in once with the owner link, wherever the proxy sends the request."""
    cluster = make_cluster(extra_env={"TANDEM_TRUST_LOOPBACK": "0"})
    a, b = cluster
    key = cluster.env["TANDEM_OWNER_KEY"]
    stranger = HttpClient(b.url)
    assert stranger.post("/api/documents/", json_body={"title": "No"}).status in {401, 403}

    owner_on_a = HttpClient(a.url)
    assert owner_on_a.get(f"/?owner={key}").status == 200
    owner_on_b = HttpClient(b.url)
    for cookie in owner_on_a.cookies:  # one browser, one cookie jar, two processes
        owner_on_b.cookies.set_cookie(cookie)
    made = owner_on_b.post("/api/documents/", json_body={"title": "Mine", "text": "x"})
    assert made.status == 201, made.text
    # And a script's Bearer token works on both.
    bearer = {"Authorization": f"Bearer {key}"}
    for server in cluster:
        read = HttpClient(server.url).get(f"/api/documents/{made.json()['id']}/", headers=bearer)
        assert read.status == 200 and read.json()["title"] == "Mine", read.text
