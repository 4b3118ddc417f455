"""The document pages: list, create, rename, delete and the editor itself.

Each view answers an HTMX request with the partial it swaps and a plain request with the
whole page, rendered from the same templates.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from collab import store
from collab.preview import PreviewState
from collab.protocol import browser_constants
from collab.room import LIVE_PREVIEW_BLOCK_LIMIT
from editor import access, documents, sharing
from editor.access import Action, Principal
from editor.forms import TitleForm
from editor.imports import MAX_IMPORT_BYTES
from editor.models import Document

LIST_LIMIT = 500

# Above this many characters the editor page is for a big document: its preview comes over
# the WebSocket once the editor is usable, and the text before any script runs is shown
# in chunks the browser lays out only when they scroll into view (a text area of a
# megabyte costs a quarter of a second of layout before the editor can even start).
PAGE_PREVIEW_MAX_CHARS = 200_000
FALLBACK_CHUNK_CHARS = 8_000


def text_chunks(text: str, size: int = FALLBACK_CHUNK_CHARS) -> list[str]:
    """The text cut after a line break into pieces of about `size` characters (a longer
    line stays whole), so that joined again they are exactly the text."""
    chunks: list[str] = []
    start = 0
    while start < len(text):
        cut = text.find("\n", start + size - 1)
        end = len(text) if cut < 0 else cut + 1
        chunks.append(text[start:end])
        start = end
    return chunks


class HtmxHttpRequest(HttpRequest):
    """What django-htmx's middleware makes of every request (for the type checker)."""

    htmx: HtmxDetails


def _get_document(doc_id: str) -> Document:
    try:
        return Document.objects.get(pk=doc_id)
    except Document.DoesNotExist:
        raise Http404("No document has this address.") from None


def _filtered(query: str, who: Principal) -> QuerySet[Document]:
    docs = Document.objects.all()
    if not access.may(who.general_role, Action.LIST_ALL):
        docs = docs.filter(pk__in=who.documents)  # a guest sees only what was shared
    for word in query.split():
        docs = docs.filter(title__icontains=word)
    return docs[:LIST_LIMIT]


@require_GET
def document_list(request: HtmxHttpRequest) -> HttpResponse:
    if "owner" in request.GET:
        return sharing.owner_sign_in(request)
    who = access.require(request, None, Action.LIST)
    query = request.GET.get("q", "").strip()
    context = {
        "documents": _filtered(query, who),
        "query": query,
        "owner": who.owner,
        "import_limit_mb": MAX_IMPORT_BYTES // (1024 * 1024),
    }
    if request.htmx and request.htmx.target == "document-list":
        return render(request, "documents/_list.html", context)
    return render(request, "documents/list.html", context)


@require_POST
def document_create(request: HtmxHttpRequest) -> HttpResponse:
    access.require(request, None, Action.CREATE)
    title = request.POST.get("title", "").strip()
    form = TitleForm({"title": title or "Untitled"})
    doc = store.create_document(form.cleaned_data["title"] if form.is_valid() else "Untitled")
    documents.tell_lists()
    if request.htmx:
        return HttpResponseClientRedirect(doc.get_absolute_url())
    return redirect(doc.get_absolute_url())


@require_GET
def document_editor(request: HtmxHttpRequest, doc_id: str) -> HttpResponse:
    role = access.require(request, doc_id, Action.READ).role(doc_id)
    doc = _get_document(doc_id)
    text, version = store.read_document(doc.id)
    context = {
        "document": doc,
        "version": version,
        "updated_at": doc.updated_at,
        # Close codes and limits, from their one home (the browser keeps no copy).
        "protocol": browser_constants(),
        "role": role.value,
        "can_edit": access.may(role, Action.EDIT),
        "read_only": not access.may(role, Action.RENAME),  # the title field
        "can_share": access.may(role, Action.SHARE),
    }
    if len(text) <= PAGE_PREVIEW_MAX_CHARS:
        # The preview is rendered server-side, so the page reads well before any script
        # runs; blocks are cached by source, so reloading a document is cheap.
        preview = PreviewState(block_limit=LIVE_PREVIEW_BLOCK_LIMIT)
        blocks = preview.render_full(text)
        context["text"] = text
        context["blocks"] = [mark_safe(b.html) for b in blocks]  # sanitised by collab.preview
        context["words"] = preview.words
    else:
        # The room sends the preview and the word count when the editor connects.
        context["text_chunks"] = text_chunks(text)
        context["words"] = None
    return render(request, "editor/editor.html", context)


@require_POST
def document_rename(request: HtmxHttpRequest, doc_id: str) -> HttpResponse:
    who = access.require(request, doc_id, Action.RENAME)
    doc = _get_document(doc_id)
    form = TitleForm(request.POST)
    status = 200
    if form.is_valid():
        documents.rename(doc, form.cleaned_data["title"])
    else:
        status = 422
    context = {"document": doc, "form": form, "owner": who.owner}
    if request.htmx:
        template = (
            "documents/_row.html"
            if request.htmx.target == f"doc-{doc.id}"
            else ("editor/_title.html")
        )
        return render(request, template, context, status=status)
    if status != 200:
        return render(request, "editor/_title.html", context, status=status)
    return redirect(request.POST.get("next") or doc.get_absolute_url())


@require_http_methods(["POST", "DELETE"])
def document_delete(request: HtmxHttpRequest, doc_id: str) -> HttpResponse:
    access.require(request, doc_id, Action.DELETE)
    documents.delete(_get_document(doc_id))
    if request.htmx and request.htmx.target == f"doc-{doc_id}":
        return HttpResponse("")  # the row swaps itself away
    if request.htmx:
        return HttpResponseClientRedirect("/")
    return redirect("/")
