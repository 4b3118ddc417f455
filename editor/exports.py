"""Downloads of a document: Markdown source, plain text, and a standalone HTML page.

The HTML page is safe to open as a file: no scripts, the preview's sanitised HTML, and its
own Content-Security-Policy (a meta, since a file has no headers) that allows nothing but
its one style sheet (by hash) and pictures.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import unicodedata

from django.http import Http404, HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from collab import store
from collab.preview import PreviewState
from editor import access
from editor.access import Action
from editor.models import Document

FORMATS = {
    "md": "text/markdown; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "html": "text/html; charset=utf-8",
}


@functools.cache
def _style() -> str:
    return render_to_string("editor/export.css")


def export_csp() -> str:
    """The exported page's policy: its own <style> (by hash), pictures, nothing else."""
    digest = base64.b64encode(hashlib.sha256(_style().encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; img-src https: http: data:; "
        "base-uri 'none'; form-action 'none'"
    )


def filename(title: str, extension: str) -> str:
    """An ASCII file name from a title: 'Café notes!' -> 'cafe-notes.md'."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    stem = re.sub(r"[^A-Za-z0-9]+", "-", ascii_title).strip("-").lower()[:80]
    return f"{stem or 'document'}.{extension}"


@require_GET
def export(request: HttpRequest, doc_id: str, extension: str) -> HttpResponse:
    access.require(request, doc_id, Action.EXPORT)
    if extension not in FORMATS:
        raise Http404("Unknown export format.")
    doc = Document.objects.filter(pk=doc_id).first()
    if doc is None:
        raise Http404("No document has this address.")
    text, _ = store.read_document(doc.id)
    body: str
    if extension == "html":
        blocks = PreviewState().render_full(text)
        body = render_to_string(
            "editor/export.html",
            {
                "document": doc,
                "body": mark_safe("\n".join(b.inner for b in blocks)),  # no preview wrappers
                "style": mark_safe(_style()),  # ours; <style> is raw text, never escape it
                "csp": export_csp(),
            },
        )
    else:
        body = text
    response = HttpResponse(body, content_type=FORMATS[extension])
    response["Content-Disposition"] = f'attachment; filename="{filename(doc.title, extension)}"'
    if extension == "html":
        # The same if opened from here; frame-ancestors works in a header only.
        response["Content-Security-Policy"] = export_csp() + "; frame-ancestors 'none'"
    return response
