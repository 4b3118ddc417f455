"""Sharing pages: opening a share link, the owner's sign-in, and the share dialog.

Who may do what is decided in editor.access; this module only turns links into cookies
and renders the dialog (links, copy buttons, QR codes, reset).
"""

from __future__ import annotations

import segno
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from editor import access, conf, credentials, documents, links, network
from editor.access import Action, Credentials
from editor.models import Document, ShareLink
from editor.throttle import limiter


def link_base(request: HttpRequest) -> str | None:
    """The scheme and host to put in links for other people, or None when no one else
    could open them (the server listens on this computer only)."""
    where = network.listening()
    own = f"{request.scheme}://{request.get_host()}"
    if where is not None and not where.loopback_only:
        domain, _port = split_domain_port(request.get_host())
        if domain != "localhost" and not access.is_loopback_address(domain):
            return own  # the owner came by a network address: others can use it too
        addresses = network.urls(where.host, where.port)
        return addresses[0].rstrip("/") if addresses else own
    if not settings.TANDEM_TRUST_LOOPBACK:
        return own  # behind a reverse proxy: the address the owner used is the public one
    return None


def absolute_links(request: HttpRequest, doc: Document) -> dict[str, str]:
    base = link_base(request) or f"{request.scheme}://{request.get_host()}"
    return {kind: f"{base}/s/{token}" for kind, token in links.tokens(doc).items()}


def _refused(request: HttpRequest, message: str, status: int = 403) -> HttpResponse:
    response = render(request, "403.html", {"message": message}, status=status)
    response["Referrer-Policy"] = "no-referrer"
    return response


def _throttled(request: HttpRequest) -> HttpResponse | None:
    address = Credentials.from_request(request).address
    if limiter.blocked(address):
        seconds = limiter.retry_after(address)
        response = _refused(
            request, f"Too many links that did not work: try again in {seconds} s.", 429
        )
        response["Retry-After"] = str(seconds)
        return response
    return None


@never_cache
@require_GET
def open_link(request: HttpRequest, token: str) -> HttpResponse:
    """`/s/<token>`: remember the grant in a cookie and go to the document's clean URL,
    so the token leaves the address bar, the history and any Referer."""
    if (refusal := _throttled(request)) is not None:
        return refusal
    link = links.find(token)
    if link is None:
        limiter.failed(Credentials.from_request(request).address)
        return _refused(
            request,
            "This link does not work (any more). Ask the person who shared it for a new one.",
        )
    response = redirect(link.document.get_absolute_url())
    held = credentials.remembered_links(request.COOKIES)
    live = set(ShareLink.objects.filter(pk__in=held).values_list("pk", flat=True))
    credentials.remember_link(response, request, link.id, keep=live)
    response["Referrer-Policy"] = "no-referrer"
    return response


def owner_sign_in(request: HttpRequest) -> HttpResponse:
    """`/?owner=<key>`: the owner cookie, then the list without the key in the address."""
    if (refusal := _throttled(request)) is not None:
        return refusal
    if not credentials.is_owner_key(request.GET.get("owner", "")):
        limiter.failed(Credentials.from_request(request).address)
        return _refused(
            request, "This owner link is not right. Copy it again from where Tandem was started."
        )
    response = redirect("/")
    credentials.sign_owner_in(response, request)
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


def _qr(url: str) -> str:
    # Dark on light whatever the page's theme: phone cameras need the contrast.
    svg: str = segno.make(url, error="m").svg_inline(
        scale=4, border=2, dark="#111", light="#fff", omitsize=True
    )
    return svg


def _dialog(request: HttpRequest, doc: Document, reset: bool = False) -> HttpResponse:
    base = link_base(request)
    context: dict[str, object] = {"document": doc, "reachable": base is not None, "reset": reset}
    if base is not None:
        context["links"] = [
            {"kind": kind, "url": url, "qr": mark_safe(_qr(url))}
            for kind, url in absolute_links(request, doc).items()
        ]
    else:
        # The same port again: a server started on another port would move otherwise.
        served = network.listening()
        command = "scripts/run --share"
        if served is not None and str(served.port) != str(conf.PORT.get()):
            command += f" --port {served.port}"
        context["command"] = command
    response = render(request, "editor/_share.html", context)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def share_dialog(request: HttpRequest, doc_id: str) -> HttpResponse:
    access.require(request, doc_id, Action.SHARE)
    return _dialog(request, get_object_or_404(Document, pk=doc_id))


@require_POST
def share_reset(request: HttpRequest, doc_id: str) -> HttpResponse:
    access.require(request, doc_id, Action.SHARE)
    doc = get_object_or_404(Document, pk=doc_id)
    documents.reset_links(doc)
    return _dialog(request, doc, reset=True)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's handler403: a page that says what to do, not just "Forbidden"."""
    if isinstance(exception, PermissionDenied) and str(exception):
        message = str(exception)
    else:
        message = access.refusal(access.Role.NONE, Action.READ)
    return _refused(request, message)
