"""The browser defences every response carries: the Content-Security-Policy and the
headers beside it (docs/security.md, "Browser defences: headers, CSP and XSS").

Django's responses get them from its SecurityMiddleware and django-csp (configured in
editor/settings.py from CSP_DIRECTIVES below). `SecurityHeaders` wraps the whole ASGI
application and adds whatever is missing to every other response, such as the live view's
event stream, which Channels answers without Django. This module has no Django imports:
settings.py reads it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from csp.constants import NONCE, NONE, SELF

# Only Tandem's own scripts and styles. The per-request nonce allows the editor page's
# import map (inline by browser rules) and the <style> element CodeMirror writes (it
# takes the nonce through EditorView.cspNonce, static/js/surface.js). No 'unsafe-inline',
# no 'unsafe-eval' (htmx's allowEval is off in templates/base.html).
CSP_DIRECTIVES: dict[str, Any] = {
    "default-src": [NONE],
    "script-src": [SELF, NONCE],
    "style-src": [SELF, NONCE],
    # Markdown may show pictures from anywhere (the preview allows http(s) links);
    # data: for small inline images. A picture cannot run script.
    "img-src": [SELF, "data:", "https:", "http:"],
    "font-src": [SELF],
    # 'self' covers the WebSocket (ws:/wss: to the same host) and the event stream.
    "connect-src": [SELF],
    "manifest-src": [SELF],
    "form-action": [SELF],
    "base-uri": [NONE],
    "object-src": [NONE],
    "frame-src": [NONE],
    "frame-ancestors": [NONE],
}

# For responses that are not pages (streams, files): nothing may load or run at all.
STRICT_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

BASELINE: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", STRICT_CSP.encode()),  # first: see SecurityHeaders
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def with_baseline(
    headers: list[tuple[bytes, bytes]], baseline: tuple[tuple[bytes, bytes], ...] = BASELINE
) -> list[tuple[bytes, bytes]]:
    """`headers` plus each baseline header it lacks (a header already there wins)."""
    present = {bytes(name).lower() for name, _ in headers}
    return [*headers, *((n, v) for n, v in baseline if n not in present)]


class SecurityHeaders:
    """ASGI middleware: every HTTP response starts with the baseline headers. With
    `csp=False` (TANDEM_DEBUG: Django's debug pages are inline styles and scripts, which
    django-csp leaves alone there too) the policy is left out."""

    def __init__(self, app: ASGIApp, *, csp: bool = True) -> None:
        self.app = app
        self.baseline = BASELINE if csp else BASELINE[1:]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = with_baseline(list(message.get("headers", [])), self.baseline)
                message = {**message, "headers": headers}
            await send(message)

        # The server's own send stays reachable: collab/flow.py reads the socket behind it.
        send_with_headers.__wrapped__ = send  # type: ignore[attr-defined]
        await self.app(scope, receive, send_with_headers)
