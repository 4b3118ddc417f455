"""The size limit of request bodies, checked before anything reads one.

Django only learns a body's size when a view reads it (and never counts uploaded files
against DATA_UPLOAD_MAX_MEMORY_SIZE), so an import of many large files would be parsed
into temporary files whatever their total. This middleware refuses any request that
declares a larger body (413; JSON under /api/) before a view or the multipart parser runs.
Django reads a body without Content-Length (chunked) as empty, so the declared length is
the one that counts. Daphne itself holds a request's body (in a temporary file beyond
100 KB) before the application sees it: on an open network, the reverse proxy's limit
(docs/deploy.md: the same 20 MB) keeps it from ever arriving.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import sync_and_async_middleware

# The largest body the API takes: a 16 MiB document as JSON, or an import of several
# files (each at most editor.imports.MAX_IMPORT_BYTES). The proxies in docs/deploy.md
# use the same 20 MB.
MAX_REQUEST_BYTES = 20 * 1024 * 1024


def declared_length(request: HttpRequest) -> int | None:
    """The Content-Length the client sent; None when there is none or it is garbage."""
    raw = request.META.get("CONTENT_LENGTH") or ""
    return int(raw) if raw.isdigit() else None


def too_large(request: HttpRequest) -> HttpResponse:
    message = f"The request body is larger than {MAX_REQUEST_BYTES // (1024 * 1024)} MiB."
    if request.path.startswith("/api/"):
        return JsonResponse({"error": message}, status=413)
    return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")


@sync_and_async_middleware
def body_limit(get_response: Any) -> Any:
    """Both kinds, so the async views (text, restore) need no thread hop for it."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponse:
            length = declared_length(request)
            if length is not None and length > MAX_REQUEST_BYTES:
                return too_large(request)
            response: HttpResponse = await get_response(request)
            return response

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponse:
        length = declared_length(request)
        if length is not None and length > MAX_REQUEST_BYTES:
            return too_large(request)
        response: HttpResponse = get_response(request)
        return response

    return middleware
