"""The JSON API: create, list, read, replace the text of, and delete documents.

Meant for scripts and other programs. State-changing calls need a JSON body (or, for the
text, `text/plain`): a cross-site form cannot send those without a CORS preflight, which
this API never grants, so the API needs no CSRF token.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from collab import store
from collab.host import RoomUnavailable, get_host
from collab.ownership import DocumentMissing
from collab.protocol import Refused, ReplaceCall, Replaced
from editor import documents
from editor.models import TITLE_MAX_LENGTH, Document

MAX_TEXT_BYTES = 16 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _describe(doc: Document) -> dict[str, Any]:
    return {
        "id": doc.id,
        "title": doc.title,
        "url": doc.get_absolute_url(),
        "version": doc.version,
        "created_at": doc.created_at.isoformat(),
        "updated_at": doc.updated_at.isoformat(),
    }


def _json_body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(415, "Send a JSON body with Content-Type: application/json.")
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.")
    return body


def clean_text(value: object) -> str:
    """Document text as stored: a string, LF line endings only, within the size limit."""
    if not isinstance(value, str):
        raise ApiError(400, '"text" must be a string.')
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise ApiError(400, '"text" contains a lone surrogate.')
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise ApiError(413, f"The text is larger than {MAX_TEXT_BYTES // (1024 * 1024)} MiB.")
    return text


def clean_title(value: object) -> str:
    if value is None:
        return "Untitled"
    if not isinstance(value, str):
        raise ApiError(400, '"title" must be a string.')
    title = " ".join(value.split())
    if len(title) > TITLE_MAX_LENGTH:
        raise ApiError(400, f'"title" is longer than {TITLE_MAX_LENGTH} characters.')
    return title or "Untitled"


def _handle_errors(view):  # type: ignore[no-untyped-def]
    """Turn ApiError into a JSON error response (sync and async views alike)."""
    if asyncio.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return await view(request, *args, **kwargs)
            except ApiError as error:
                return _error(error.status, error.message)

        return async_wrapper

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ApiError as error:
            return _error(error.status, error.message)

    return wrapper


@csrf_exempt
@require_http_methods(["GET", "POST"])
@_handle_errors
def documents_collection(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        docs = Document.objects.all()[:1000]
        return JsonResponse({"documents": [_describe(d) for d in docs]})
    body = _json_body(request)
    title = clean_title(body.get("title"))
    text = clean_text(body.get("text", ""))
    doc = store.create_document(title, text)
    return JsonResponse(_describe(doc), status=201)


@csrf_exempt
@require_http_methods(["GET", "DELETE"])
@_handle_errors
def document_detail(request: HttpRequest, doc_id: str) -> HttpResponse:
    doc = Document.objects.filter(pk=doc_id).first()
    if doc is None:
        return _error(404, "No document has this id.")
    if request.method == "DELETE":
        documents.delete(doc)
        return HttpResponse(status=204)
    text, version = store.read_document(doc.id)
    return JsonResponse({**_describe(doc), "text": text, "version": version})


@csrf_exempt
@require_http_methods(["PUT"])
@_handle_errors
async def document_text(request: HttpRequest, doc_id: str) -> HttpResponse:
    """Replace the text as a merged change: editors who are in the document see it at once."""
    if request.content_type == "text/plain":
        try:
            raw: object = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "The body is not UTF-8 text.") from None
    else:
        raw = _json_body(request).get("text")
    text = clean_text(raw)
    if not await Document.objects.filter(pk=doc_id).aexists():
        return _error(404, "No document has this id.")
    try:
        reply = await get_host().call(doc_id, ReplaceCall(text, author="API"))
    except DocumentMissing:
        return _error(404, "No document has this id.")
    except RoomUnavailable:
        return _error(503, "The document is reloading; try again.")
    if isinstance(reply, Refused):
        return _error(413 if reply.code == "too_large" else 400, reply.message)
    assert isinstance(reply, Replaced)
    version = reply.version
    doc = await Document.objects.aget(pk=doc_id)
    return JsonResponse({**await sync_to_async(_describe)(doc), "version": version})
