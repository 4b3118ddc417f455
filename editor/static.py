"""Static files straight from the ASGI layer, with WhiteNoise's own machinery.

Django's `WhiteNoiseMiddleware` answers `/static/...`, but only after Daphne has handed the
request to Django's ASGI handler, which runs the whole (synchronous) middleware chain in a
thread: about 2 ms of server time per file, and the editor page loads some 30 of them
while the browser, on the same cores, compiles the first ones (docs/benchmarks.md, "Opening
the page"). `StaticFiles` answers them before Django: the same `WhiteNoiseMiddleware`
instance built from the same settings (its file index made at start-up; in DEBUG, files
found on each request through the finders), the same `StaticFile.get_response` (gzip or
brotli by Accept-Encoding, ETag and If-Modified-Since answered with 304, HEAD, ranges, 405
for other methods), the same headers. A path WhiteNoise does not know goes on to Django
(its 404 page, or any view). It sits inside `SecurityHeaders` (editor/asgi.py), and adds
the headers that Django's middleware chain put on static files (the page policy, framing,
nosniff, referrer, COOP), so a file's response is header for header what it was.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import IO, Any

from django.conf import settings
from whitenoise.middleware import WhiteNoiseMiddleware
from whitenoise.responders import Response

from editor.headers import ASGIApp, Receive, Scope, Send

# The request headers StaticFile.get_response reads, by their ASGI names.
REQUEST_HEADERS = {
    b"accept-encoding": "HTTP_ACCEPT_ENCODING",
    b"if-none-match": "HTTP_IF_NONE_MATCH",
    b"if-modified-since": "HTTP_IF_MODIFIED_SINCE",
    b"range": "HTTP_RANGE",
}

# A body up to this size is read inside the event loop: Tandem's files are at most a few
# hundred KB (the largest, CodeMirror's view module, is 70 KB compressed), are in the page
# cache after the first read, and such a read takes well under a millisecond, less than
# a hop to a thread would. Anything bigger (a file someone added to STATIC_ROOT) is read
# in a thread, in chunks, so that no request stalls the WebSockets behind it.
INLINE_MAX_BYTES = 1024 * 1024
CHUNK_BYTES = 256 * 1024


def django_static_headers() -> list[tuple[bytes, bytes]] | None:
    """The headers Django's middleware chain adds to a static file's response (its
    SecurityMiddleware, django-csp, XFrameOptionsMiddleware; whitenoise sits after them in
    MIDDLEWARE), or None when they would depend on the request (an https redirect, HSTS
    on secure requests): then the files go through Django as before."""
    if getattr(settings, "SECURE_SSL_REDIRECT", False) or getattr(
        settings, "SECURE_HSTS_SECONDS", 0
    ):
        return None
    from csp.utils import build_policy

    headers: list[tuple[str, str]] = []
    middleware = settings.MIDDLEWARE
    if "django.middleware.clickjacking.XFrameOptionsMiddleware" in middleware:
        headers.append(("X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY")))
    if "csp.middleware.CSPMiddleware" in middleware:
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}
        if not settings.STATIC_URL or not any(
            f"/{settings.STATIC_URL.lstrip('/')}".startswith(prefix)
            for prefix in policy.get("EXCLUDE_URL_PREFIXES", ())
        ):
            if csp := build_policy():
                headers.append(("Content-Security-Policy", csp))
            if csp_ro := build_policy(report_only=True):
                headers.append(("Content-Security-Policy-Report-Only", csp_ro))
    if "django.middleware.security.SecurityMiddleware" in middleware:
        if settings.SECURE_CONTENT_TYPE_NOSNIFF:
            headers.append(("X-Content-Type-Options", "nosniff"))
        if settings.SECURE_REFERRER_POLICY:
            policy = settings.SECURE_REFERRER_POLICY
            if not isinstance(policy, str):
                policy = ",".join(policy)
            headers.append(("Referrer-Policy", policy))
        if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
            headers.append(
                ("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY)
            )
    return _encode(headers)


def _encode(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


class StaticFiles:
    """ASGI middleware: the files WhiteNoise knows, answered here; everything else goes
    to `app`. Off (everything to `app`) when whitenoise is not in MIDDLEWARE or Django's
    headers would depend on the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.extra_headers = django_static_headers()
        self.whitenoise: WhiteNoiseMiddleware | None = None
        if (
            self.extra_headers is not None
            and "whitenoise.middleware.WhiteNoiseMiddleware" in settings.MIDDLEWARE
        ):
            self.whitenoise = WhiteNoiseMiddleware(get_response=None)
            self.prefix = self.whitenoise.static_prefix

    def find(self, path: str) -> Any:
        assert self.whitenoise is not None
        if self.whitenoise.autorefresh:  # DEBUG: looked up on disk (and in the finders)
            return self.whitenoise.find_file(path)
        return self.whitenoise.files.get(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.whitenoise is None:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        try:
            static_file = self.find(path) if path.startswith(self.prefix) else None
            response = None
            if static_file is not None:
                response = self.respond(static_file, scope)
        except OSError:
            # Gone or unreadable since the index was made: Django answers, as before (its
            # own WhiteNoise meets the same error: a 500 page, or in DEBUG a 404).
            response = None
        if response is None:
            await self.app(scope, receive, send)
            return
        assert self.extra_headers is not None
        await send(
            {
                "type": "http.response.start",
                "status": int(response.status),
                "headers": [*_encode(response.headers), *self.extra_headers],
            }
        )
        await self.send_body(response.file, response.headers, send)

    @staticmethod
    def respond(static_file: Any, scope: Scope) -> Response:
        request_headers: dict[str, str] = {}
        for name, value in scope.get("headers", ()):
            key = REQUEST_HEADERS.get(bytes(name).lower())
            if key is not None:
                text = bytes(value).decode("latin-1")
                request_headers[key] = (
                    f"{request_headers[key]},{text}" if key in request_headers else text
                )
        response: Response = static_file.get_response(scope["method"], request_headers)
        return response

    @staticmethod
    async def send_body(
        file: IO[bytes] | None, headers: Iterable[tuple[str, str]], send: Send
    ) -> None:
        if file is None:
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            length = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
            if length is not None and length <= INLINE_MAX_BYTES:
                await send({"type": "http.response.body", "body": file.read()})
                return
            while True:
                chunk = await asyncio.to_thread(file.read, CHUNK_BYTES)
                more = len(chunk) == CHUNK_BYTES
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if not more:
                    return
        finally:
            file.close()
