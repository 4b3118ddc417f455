"""The XSS corpus (tests/xss_payloads.txt), read once for the unit and browser tests."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).with_name("xss_payloads.txt")
CANARY = "/__xss/"  # a payload that makes the browser ask for this has run (or loaded)


@dataclass(frozen=True)
class Payload:
    n: int
    text: str

    def fit(self, limit: int) -> str:
        """The payload cut to `limit` characters (titles, names and labels are bounded:
        cut, it is still hostile markup, and what the server would keep anyway)."""
        return self.text[:limit]


@functools.cache
def load() -> tuple[Payload, ...]:
    """Every payload, numbered from 1 (read once)."""
    payloads: list[Payload] = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        n = len(payloads) + 1
        text = line.replace("\\n", "\n").replace("\\t", "\t").replace("XSSN", str(n))
        payloads.append(Payload(n, text))
    return tuple(payloads)


def ran(text: str) -> set[int]:
    """Canary numbers a text (a log, a list of requested URLs) mentions."""
    return {int(n) for n in re.findall(re.escape(CANARY) + r"(\d+)", text)}


def packed(limit: int = 100) -> list[str]:
    """The payloads packed into as few strings of at most `limit` characters as they fit,
    one line each (one page then tries several at once; a longer payload is cut, still
    hostile)."""
    chunks: list[str] = []
    for payload in load():
        text = " ".join(payload.text.split())[:limit]
        if chunks and len(chunks[-1]) + 1 + len(text) <= limit:
            chunks[-1] += " " + text
        else:
            chunks.append(text)
    return chunks
