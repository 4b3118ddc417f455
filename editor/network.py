"""Where this server listens, and the addresses people on the network can use.

`serve` records what it listens on; the share dialog asks here whether links made for
other people can work at all, and which address to put in them. The addresses come from
the machine's own interfaces (psutil): nothing is sent anywhere to find them.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Listening:
    host: str
    port: int

    @property
    def loopback_only(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False  # a host name: whatever it resolves to, others may reach it


_listening: Listening | None = None


def set_listening(host: str, port: int) -> None:
    global _listening
    _listening = Listening(host, port)


def listening() -> Listening | None:
    """What `serve` listens on; None in a process that `serve` did not start (tests)."""
    return _listening


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def network_addresses(host: str) -> list[str]:
    """The addresses others may reach a server listening on `host` by: the interfaces'
    own (private LAN ones first), or `host` itself when it names one address."""
    if host not in {"0.0.0.0", "::", ""}:
        return [host]
    families = {socket.AF_INET} if host == "0.0.0.0" else {socket.AF_INET, socket.AF_INET6}
    stats = psutil.net_if_stats()
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for name, addresses in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for entry in addresses:
            if entry.family not in families:
                continue
            try:
                address = ipaddress.ip_address(entry.address.split("%")[0])
            except ValueError:
                continue
            if not (address.is_loopback or address.is_link_local or address.is_multicast):
                found.append(address)
    found.sort(key=lambda a: (a.version, not a.is_private, a.packed))
    return [str(a) for a in dict.fromkeys(found)]


def urls(host: str, port: int) -> list[str]:
    return [f"http://{_url_host(a)}:{port}/" for a in network_addresses(host)]
