"""The JSON API: create, list, read, replace the text of, and delete documents; share links.

Meant for scripts and other programs, and for the editor page. Who may call what is
decided by editor.access: the owner (this machine, the owner cookie, or `Authorization:
Bearer <owner key>`), or a share link's holder (its cookie, or `Bearer <token>`) on its
document.

CSRF: a write authenticated by a bearer token carries no ambient credential and needs
nothing more. A write that relies on a cookie, or that comes from a browser (it has an
Origin header), must pass Django's CSRF check (the X-CSRFToken header). A script on this
machine sends neither and is the owner; a cross-site page cannot make a browser send a
write without an Origin header.
"""

from __future__ import annotations

import asyncio
import functools
import json
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt
from django.views.defaults import page_not_found

from collab import store
from collab.host import RoomUnavailable, get_host
from collab.ownership import DocumentMissing
from collab.protocol import Refused, ReplaceCall, Replaced, RestoreCall
from editor import access, credentials, documents, sharing
from editor.access import Action, BadCredentials, Principal, Throttled
from editor.models import TITLE_MAX_LENGTH, Document

MAX_TEXT_BYTES = 16 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def _error(status: int, message: str, retry_after: int | None = None) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


_csrf = CsrfViewMiddleware(lambda request: HttpResponse())
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _needs_csrf(request: HttpRequest, who: Principal) -> bool:
    if who.bearer or request.method in _SAFE_METHODS:
        return False
    cookies = request.COOKIES
    from_browser = "HTTP_ORIGIN" in request.META
    return from_browser or any(c in cookies for c in credentials.COOKIES)


def _csrf_failed(request: HttpRequest) -> bool:
    # Django's own check; the view passed only matters for its csrf_exempt flag (unset).
    return _csrf.process_view(request, HttpResponse, (), {}) is not None


def authorize(request: HttpRequest, doc_id: str | None, action: Action) -> Principal:
    """The caller, if it may do `action` (on `doc_id`); ApiError otherwise. 404 only for
    someone who could see the document if it existed."""
    try:
        who = access.principal(request)
    except Throttled as error:
        raise ApiError(429, str(error), error.retry_after) from None
    except BadCredentials as error:
        raise ApiError(403, str(error)) from None
    role = who.role(doc_id) if doc_id is not None else who.general_role
    if not access.may(role, action):
        raise ApiError(403, access.refusal(role, action))
    if _needs_csrf(request, who) and _csrf_failed(request):
        raise ApiError(
            403,
            "CSRF check failed: a browser sends the X-CSRFToken header (from the csrftoken "
            "cookie); a script uses 'Authorization: Bearer <key or token>' instead.",
        )
    if doc_id is not None and not Document.objects.filter(pk=doc_id).exists():
        raise ApiError(404, "No document has this id.")
    return who


def _describe(doc: Document) -> dict[str, Any]:
    return {
        "id": doc.id,
        "title": doc.title,
        "url": doc.get_absolute_url(),
        "version": doc.version,
        "created_at": doc.created_at.isoformat(),
        "updated_at": doc.updated_at.isoformat(),
    }


def _body(request: HttpRequest) -> bytes:
    try:
        return request.body
    except RequestDataTooBig:
        raise ApiError(413, "The body is too large.") from None


def _json_body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(415, "Send a JSON body with Content-Type: application/json.")
    try:
        body = json.loads(_body(request) or b"{}")
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


def methods(*allowed: str):  # type: ignore[no-untyped-def]
    """Like Django's require_http_methods, but the 405 is JSON like every API error."""

    def decorate(view):  # type: ignore[no-untyped-def]
        def refusal(request: HttpRequest) -> HttpResponse | None:
            # Exactly these: a HEAD let through would reach a view's write branch
            # (views test for "GET", not for "not a write") without a CSRF check.
            if request.method in allowed:
                return None
            response = _error(
                405, f"{request.method} is not allowed here; use {', '.join(allowed)}."
            )
            response["Allow"] = ", ".join(allowed)
            return response

        if asyncio.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(
                request: HttpRequest, *args: Any, **kwargs: Any
            ) -> HttpResponse:
                return refusal(request) or await view(request, *args, **kwargs)

            return async_wrapper

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            return refusal(request) or view(request, *args, **kwargs)

        return wrapper

    return decorate


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's handler404: JSON under /api/, the 404 page elsewhere."""
    if request.path.startswith("/api/"):
        return _error(404, "No API endpoint has this address.")
    return page_not_found(request, exception or Http404())


def _handle_errors(view):  # type: ignore[no-untyped-def]
    """Turn ApiError into a JSON error response (sync and async views alike)."""
    if asyncio.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return await view(request, *args, **kwargs)
            except ApiError as error:
                return _error(error.status, error.message, error.retry_after)

        return async_wrapper

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ApiError as error:
            return _error(error.status, error.message, error.retry_after)

    return wrapper


@csrf_exempt
@methods("GET", "POST")
@_handle_errors
def documents_collection(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        who = authorize(request, None, Action.LIST)
        docs = Document.objects.all()
        if not access.may(who.general_role, Action.LIST_ALL):
            docs = docs.filter(pk__in=who.documents)
        return JsonResponse({"documents": [_describe(d) for d in docs[:1000]]})
    authorize(request, None, Action.CREATE)
    body = _json_body(request)
    title = clean_title(body.get("title"))
    text = clean_text(body.get("text", ""))
    doc = store.create_document(title, text, author="API")
    documents.tell_lists()
    return JsonResponse(_describe(doc), status=201)


@csrf_exempt
@methods("GET", "DELETE")
@_handle_errors
def document_detail(request: HttpRequest, doc_id: str) -> HttpResponse:
    authorize(request, doc_id, Action.DELETE if request.method == "DELETE" else Action.READ)
    doc = Document.objects.get(pk=doc_id)
    if request.method == "DELETE":
        documents.delete(doc)
        return HttpResponse(status=204)
    if request.GET.get("version") is not None:  # the text at a past version (history)
        from editor.history_api import text_at_response

        return text_at_response(doc.id, request.GET["version"])
    text, version = store.read_document(doc.id)
    return JsonResponse({**_describe(doc), "text": text, "version": version})


async def change_text(doc_id: str, call: ReplaceCall | RestoreCall) -> int:
    """Ask the document's room (in whatever process runs it) to change the whole text;
    the new version, or ApiError."""
    try:
        reply = await get_host().call(doc_id, call)
    except DocumentMissing:
        raise ApiError(404, "No document has this id.") from None
    except RoomUnavailable:
        raise ApiError(503, "The document is reloading; try again.") from None
    if isinstance(reply, Refused):
        raise ApiError(413 if reply.code == "too_large" else 400, reply.message)
    assert isinstance(reply, Replaced)
    return reply.version


@csrf_exempt
@methods("PUT")
@_handle_errors
async def document_text(request: HttpRequest, doc_id: str) -> HttpResponse:
    """Replace the text as a merged change: editors who are in the document see it at once."""
    await sync_to_async(authorize)(request, doc_id, Action.EDIT)
    if request.content_type == "text/plain":
        try:
            raw: object = _body(request).decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "The body is not UTF-8 text.") from None
    else:
        raw = _json_body(request).get("text")
    text = clean_text(raw)
    version = await change_text(doc_id, ReplaceCall(text, author="API"))
    doc = await Document.objects.aget(pk=doc_id)
    return JsonResponse({**await sync_to_async(_describe)(doc), "version": version})


@csrf_exempt
@methods("GET")
@_handle_errors
def document_links(request: HttpRequest, doc_id: str) -> HttpResponse:
    """{"edit": url, "view": url}, made on first use; "reachable" is false when the server
    listens on this computer only (no one else could open them)."""
    authorize(request, doc_id, Action.SHARE)
    return _links(request, Document.objects.get(pk=doc_id))


@csrf_exempt
@methods("POST")
@_handle_errors
def document_links_reset(request: HttpRequest, doc_id: str) -> HttpResponse:
    """New links; the old ones stop working and their guests are disconnected."""
    authorize(request, doc_id, Action.SHARE)
    doc = Document.objects.get(pk=doc_id)
    documents.reset_links(doc)
    return _links(request, doc)


def _links(request: HttpRequest, doc: Document) -> JsonResponse:
    body: dict[str, Any] = sharing.absolute_links(request, doc)
    body["reachable"] = sharing.link_base(request) is not None
    response = JsonResponse(body)
    response["Cache-Control"] = "no-store"
    return response
