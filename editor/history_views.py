"""The pages of history: the panel's list (an htmx partial), a past version (rendered, or
its changes against another version), and the live view (Server-Sent Events).

Access from editor.access: whoever may read a document may browse its history and use
the live view (Action.HISTORY); the restore and "Save version" controls show only for
those who may use them (the API checks again).
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from collab import history, store
from collab.preview import PreviewState
from collab.room import LIVE_PREVIEW_BLOCK_LIMIT
from editor import access
from editor.access import Action
from editor.changes import changes, summary
from editor.models import Document


def _document(doc_id: str) -> Document:
    doc = Document.objects.filter(pk=doc_id).first()
    if doc is None:
        raise Http404("No document has this address.")
    return doc


def _version(value: str | None, latest: int) -> int | None:
    """A version from the URL; None for "current"."""
    if value in (None, "", "current"):
        return None
    if not value.isdigit() or int(value) > latest:
        raise Http404(f"This document has versions 0 to {latest}.")
    return int(value)


@require_GET
def history_panel(request: HttpRequest, doc_id: str) -> HttpResponse:
    """The panel's entries (newest first), or the next page of them (`before`)."""
    role = access.require(request, doc_id, Action.HISTORY).role(doc_id)
    doc = _document(doc_id)
    before_raw = request.GET.get("before", "")
    before = int(before_raw) if before_raw.isdigit() else None
    named = request.GET.get("named") == "1"
    page = history.named_sessions if named else history.sessions
    sessions, next_before = page(doc_id, before, history.PAGE_DEFAULT)
    context = {
        "document": doc,
        "sessions": sessions,
        "next": next_before,
        "named": named,
        "can_restore": access.may(role, Action.RESTORE),
        "can_name": access.may(role, Action.NAME_VERSION),
        "latest": doc.version,
    }
    template = "editor/_history_items.html" if before is not None else "editor/_history.html"
    return render(request, template, context)


@require_GET
def version_page(request: HttpRequest, doc_id: str, version: int) -> HttpResponse:
    """A past version: rendered Markdown, or (`?against=current|n`) its changes."""
    role = access.require(request, doc_id, Action.HISTORY).role(doc_id)
    doc = _document(doc_id)
    try:
        text = history.text_at(doc_id, version)
    except history.UnknownVersion as error:
        raise Http404(str(error)) from None
    latest = doc.version
    context = {
        "document": doc,
        "version": version,
        "latest": latest,
        "can_restore": access.may(role, Action.RESTORE) and version != latest,
        "label": history.labels_below(doc_id, version + 1).get(version, ""),
    }
    against_raw = request.GET.get("against")
    if against_raw is None:
        blocks = PreviewState(block_limit=LIVE_PREVIEW_BLOCK_LIMIT).render_full(text)
        context["blocks"] = [mark_safe(b.html) for b in blocks]  # sanitised by collab.preview
        return render(request, "editor/version.html", context)
    against = _version(against_raw, latest)
    if against is None:
        other, _ = store.read_document(doc_id)
    else:
        other = history.text_at(doc_id, against)
    # Old on the left of the arrow, new on the right: "what changed since this version".
    older_first = against is None or against > version
    pieces = changes(text, other) if older_first else changes(other, text)
    inserted, deleted = summary(pieces)
    context.update(
        {
            "pieces": pieces,
            "against": "current" if against is None else against,
            "from_version": version if older_first else against,
            "to_version": ("current" if against is None else against) if older_first else version,
            "inserted": inserted,
            "deleted": deleted,
        }
    )
    return render(request, "editor/version_changes.html", context)


@require_GET
def live_page(request: HttpRequest, doc_id: str) -> HttpResponse:
    """The read-only live view: the rendered document and who is here, kept current by
    Server-Sent Events from /d/<id>/events (collab/events.py)."""
    access.require(request, doc_id, Action.HISTORY)
    doc = _document(doc_id)
    text, version = store.read_document(doc_id)
    preview = PreviewState(block_limit=LIVE_PREVIEW_BLOCK_LIMIT)
    blocks = preview.render_full(text)
    context = {
        "document": doc,
        "version": version,
        "blocks": [mark_safe(b.html) for b in blocks],  # sanitised by collab.preview
        "words": preview.words,
        "updated_at": doc.updated_at,
    }
    return render(request, "editor/live.html", context)
