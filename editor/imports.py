"""Import of files as documents, and export of the whole library as a .zip.

One document per file, named after it. Only text comes in: .md, .markdown and .txt,
UTF-8 (a byte-order mark is dropped), CRLF and CR turned into LF, at most MAX_IMPORT_BYTES.
A file that is refused gets a clear reason and changes nothing; the others still come in.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from collab import store
from editor import access
from editor.access import Action
from editor.exports import filename
from editor.models import TITLE_MAX_LENGTH, Document

MAX_IMPORT_BYTES = 10 * 1024 * 1024
EXTENSIONS = (".md", ".markdown", ".txt")
_BOM = "\ufeff"


class RefusedFile(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Imported:
    name: str
    document: Document | None = None
    error: str = ""


def title_of(name: str) -> str:
    """'notes/Meeting 3.md' -> 'Meeting 3'."""
    stem = PurePath(name.replace("\\", "/")).stem
    title = " ".join(stem.split())[:TITLE_MAX_LENGTH]
    return title or "Untitled"


def decode(data: bytes) -> str:
    """The text of an uploaded file, as Tandem stores text; RefusedFile says why not."""
    if b"\x00" in data[:8192]:
        raise RefusedFile("this looks like a binary file, not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RefusedFile(
            f"not UTF-8 text (byte {error.start}); save it as UTF-8 and import it again"
        ) from None
    text = text.removeprefix(_BOM).replace("\r\n", "\n").replace("\r", "\n")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):  # (cannot come from UTF-8; safety)
        raise RefusedFile("contains a lone surrogate")
    return text


def read_upload(upload: UploadedFile) -> str:
    name = upload.name or "file"
    if not name.lower().endswith(EXTENSIONS):
        raise RefusedFile("only .md, .markdown and .txt files can be imported")
    if (upload.size or 0) > MAX_IMPORT_BYTES:
        raise RefusedFile(f"larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB")
    return decode(upload.read(MAX_IMPORT_BYTES + 1))


def import_files(uploads: Sequence[UploadedFile]) -> list[Imported]:
    results: list[Imported] = []
    for upload in uploads:
        name = upload.name or "file"
        try:
            text = read_upload(upload)
        except RefusedFile as error:
            results.append(Imported(name, error=str(error)))
            continue
        document = store.create_document(title_of(name), text, author=f"Import of {name}"[:80])
        results.append(Imported(name, document))
    return results


# ---------------------------------------------------------------- export of the library


def _unique(names: Iterable[str]) -> list[str]:
    seen: dict[str, int] = {}
    out: list[str] = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        stem, dot, ext = name.rpartition(".")
        out.append(name if count == 0 else f"{stem}-{count + 1}{dot}{ext}")
    return out


@require_GET
def export_library(request: HttpRequest) -> HttpResponse:
    """Every document one may see, as a .zip of .md files."""
    who = access.require(request, None, Action.LIST)
    query = Document.objects.order_by("title", "id")
    if not access.may(who.general_role, Action.LIST_ALL):
        query = query.filter(pk__in=who.documents)
    docs = [d for d in query if who.may(d.id, Action.EXPORT)]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for doc, name in zip(docs, _unique(filename(d.title, "md") for d in docs), strict=True):
            text, _ = store.read_document(doc.id)
            archive.writestr(name, text)
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    stamp = timezone.now().strftime("%Y-%m-%d")
    response["Content-Disposition"] = f'attachment; filename="tandem-{stamp}.zip"'
    return response
