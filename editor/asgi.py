"""ASGI entry point: HTTP goes to Django (but static files, which WhiteNoise answers before
Django's handler, and the live view's event stream, which Channels answers itself),
WebSockets to the collaboration consumers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "editor.settings")
django_asgi_app = get_asgi_application()  # sets Django up before the consumers import models

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402

from collab.routing import http_urlpatterns, websocket_urlpatterns  # noqa: E402
from editor.headers import SecurityHeaders  # noqa: E402
from editor.static import StaticFiles  # noqa: E402

# Django's handler is an ASGI app, which re_path serves but is not typed for.
django_route = re_path(r"", django_asgi_app)  # type: ignore[arg-type]

application = ProtocolTypeRouter(
    {
        # Every HTTP response gets the browser defences, Django's or not (editor/headers.py);
        # static files skip Django's handler and middleware thread (editor/static.py).
        "http": SecurityHeaders(
            StaticFiles(URLRouter([*http_urlpatterns, django_route])), csp=not settings.DEBUG
        ),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
