"""The JSON API of history and import: versions, restore, named versions, import.

Same rules as editor/api.py (access from editor.access, CSRF for browser writes, clear
4xx JSON errors). Reads of the log run in a worker thread; a restore is a change made by
the document's room (wherever it runs), never a rewrite of the log.
"""

from __future__ import annotations

import re
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from collab import history
from collab.origin import is_same_origin
from collab.protocol import RestoreCall
from editor import documents, imports
from editor.access import Action
from editor.api import (
    ApiError,
    _describe,
    _handle_errors,
    _json_body,
    authorize,
    change_text,
    methods,
)
from editor.models import Document

_CID = re.compile(r"[A-Za-z0-9_-]{8,64}")
RESTORED_BY = "Restore"  # the author of a restore that came from no editor's page


def parse_version(value: object, name: str = "version") -> int:
    """A version number from JSON or a query string."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if type(value) is not int or value < 0:
        raise ApiError(400, f'"{name}" must be a whole number >= 0.')
    return value


def _text_at(doc_id: str, version: int) -> str:
    try:
        return history.text_at(doc_id, version)
    except history.UnknownVersion as error:
        raise ApiError(404, str(error)) from None


def text_at_response(doc_id: str, raw_version: str) -> JsonResponse:
    """`GET /api/documents/<id>/?version=n` (called by api.document_detail)."""
    version = parse_version(raw_version)
    text = _text_at(doc_id, version)
    doc = Document.objects.get(pk=doc_id)
    return JsonResponse({**_describe(doc), "text": text, "version": version})


@csrf_exempt
@methods("GET", "POST")
@_handle_errors
def document_versions(request: HttpRequest, doc_id: str) -> HttpResponse:
    """GET: a page of the history, newest first. POST {"label"}: name the current
    version (or {"label", "version"}: a given one)."""
    if request.method == "POST":
        return _name_version(request, doc_id)
    authorize(request, doc_id, Action.HISTORY)
    before_raw = request.GET.get("before")
    before = parse_version(before_raw, "before") if before_raw not in (None, "") else None
    try:
        limit = history.page_size(request.GET.get("limit"))
    except ValueError as error:
        raise ApiError(400, str(error)) from None
    named = request.GET.get("named") in {"1", "true", "yes"}
    page = history.named_sessions if named else history.sessions
    sessions, next_before = page(doc_id, before, limit)
    return JsonResponse({"versions": [s.to_json() for s in sessions], "next": next_before})


def _name_version(request: HttpRequest, doc_id: str) -> HttpResponse:
    authorize(request, doc_id, Action.NAME_VERSION)
    body = _json_body(request)
    try:
        label = history.clean_label(body.get("label"))
    except history.BadLabel as error:
        raise ApiError(400, str(error)) from None
    latest = history.latest_version(doc_id)
    version = latest if body.get("version") is None else parse_version(body.get("version"))
    if not 1 <= version <= latest:
        raise ApiError(404, f"This document has versions 1 to {latest}, not {version}.")
    author = _author(body)
    # Naming a named version renames it: the answer says what it was called, so the
    # page can say so rather than lose the old name quietly.
    previous = history.label_of(doc_id, version)
    named = history.name_version(doc_id, version, label, author)
    return JsonResponse(
        {"version": named.version, "label": named.label, "previous": previous}, status=201
    )


def _author(body: dict[str, Any]) -> str:
    name = body.get("name")
    if isinstance(name, str) and name.strip():
        return " ".join(name.split())[:80]
    return ""


@csrf_exempt
@methods("POST")
@_handle_errors
async def document_restore(request: HttpRequest, doc_id: str) -> HttpResponse:
    """{"version": n[, "cid", "name"]}: a new change that makes the text equal to version
    n, merged live. With the editor page's `cid`, the change is that editor's own: its
    undo (Ctrl+Z) takes the restore back."""
    await sync_to_async(authorize)(request, doc_id, Action.RESTORE)
    body = _json_body(request)
    version = parse_version(body.get("version"))
    cid = body.get("cid") or ""
    if not isinstance(cid, str) or (cid and not _CID.fullmatch(cid)):
        raise ApiError(400, '"cid" must be 8-64 characters of A-Z a-z 0-9 _ -')
    text = await sync_to_async(_text_at)(doc_id, version)
    author = _author(body) or RESTORED_BY
    new_version = await change_text(doc_id, RestoreCall(version, text, author, cid))
    doc = await Document.objects.aget(pk=doc_id)
    described = await sync_to_async(_describe)(doc)
    return JsonResponse({**described, "text": text, "version": new_version, "restored": version})


@csrf_exempt
@methods("POST")
@_handle_errors
def documents_import(request: HttpRequest) -> HttpResponse:
    """Multipart, field `files` (one or more): one new document per file. A browser
    request from another site is refused: a multipart POST needs no preflight, so without
    this any page the owner visits could fill their library."""
    if not is_same_origin(_headers(request)):
        raise ApiError(403, "Import refused: the request came from another site.")
    authorize(request, None, Action.IMPORT)
    try:
        files = request.FILES.getlist("files")
    except (MultiPartParserError, SuspiciousOperation) as error:  # malformed, too many files
        raise ApiError(400, f"The upload is not a readable multipart body: {error}") from None
    if not files:
        raise ApiError(400, 'Send one or more files in the multipart field "files".')
    results = imports.import_files(files)
    created = [_describe(r.document) for r in results if r.document is not None]
    if created:
        documents.tell_lists()  # open document lists show the new ones
    errors = [{"file": r.name, "error": r.error} for r in results if r.error]
    status = 201 if created and not errors else (207 if created else 400)
    body: dict[str, Any] = {"documents": created, "errors": errors}
    if not created:
        body["error"] = "; ".join(f"{e['file']}: {e['error']}" for e in errors)
    return JsonResponse(body, status=status)


def _headers(request: HttpRequest) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    if "HTTP_ORIGIN" in request.META:
        headers.append((b"origin", request.META["HTTP_ORIGIN"].encode("latin-1")))
    headers.append((b"host", request.get_host().encode("latin-1")))
    return headers
