"""Where links point: `serve --share`, the machine's addresses, and the owner's banner."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from django.test import RequestFactory

from editor import credentials, network, sharing
from editor.management.commands.serve import Command


@pytest.fixture(autouse=True)
def _not_listening() -> Any:
    yield
    network._listening = None


def test_the_machines_addresses_leave_out_loopback_and_link_local() -> None:
    for address in network.network_addresses("0.0.0.0"):
        parsed = ipaddress.ip_address(address)
        assert parsed.version == 4 and not parsed.is_loopback and not parsed.is_link_local
    assert network.network_addresses("192.168.1.5") == ["192.168.1.5"]
    assert network.urls("::", 8000) == [
        f"http://[{a}]:8000/" if ":" in a else f"http://{a}:8000/"
        for a in network.network_addresses("::")
    ]


def test_share_listens_on_the_network_unless_told_another_address() -> None:
    parser = Command().create_parser("manage.py", "serve")
    assert parser.parse_args(["--share"]).share
    assert not parser.parse_args([]).share


def test_the_banner_gives_the_owner_link_and_when_shared_the_addresses(monkeypatch: Any) -> None:
    monkeypatch.setattr(network, "network_addresses", lambda host: ["192.168.1.5"])
    shared = Command()._banner("0.0.0.0", 8000)
    assert "Shared on your network at http://192.168.1.5:8000/" in shared
    assert f"http://127.0.0.1:8000/?owner={credentials.owner_key()}" in shared
    local = Command()._banner("127.0.0.1", 8000)
    assert local.startswith("Tandem is running at http://127.0.0.1:8000/")
    assert "Shared" not in local and "?owner=" in local


def test_links_made_on_loopback_carry_the_network_address(monkeypatch: Any, settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["*"]  # what serve --share allows
    monkeypatch.setattr(network, "network_addresses", lambda host: ["192.168.1.5"])
    network.set_listening("0.0.0.0", 8000)
    factory = RequestFactory()
    from_here = factory.get("/", HTTP_HOST="127.0.0.1:8000")
    assert sharing.link_base(from_here) == "http://192.168.1.5:8000"
    # The owner came by a network name (owner link on a laptop): others can use it too.
    by_name = factory.get("/", HTTP_HOST="desk.lan:8000")
    assert sharing.link_base(by_name) == "http://desk.lan:8000"


def test_no_links_for_others_when_listening_on_loopback_only(settings: Any) -> None:
    settings.TANDEM_TRUST_LOOPBACK = True
    network.set_listening("127.0.0.1", 8000)
    assert sharing.link_base(RequestFactory().get("/", HTTP_HOST="127.0.0.1:8000")) is None
    settings.TANDEM_TRUST_LOOPBACK = False  # behind a proxy: the address used is the public one
    request = RequestFactory().get("/", HTTP_HOST="localhost:8000")
    assert sharing.link_base(request) == "http://localhost:8000"
