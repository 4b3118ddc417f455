from django.urls import path

from collab.consumers import DocumentConsumer
from collab.events import EventsConsumer
from collab.flow import FlowControl
from collab.list_consumer import DocumentListConsumer

# Every socket's queues are bounded (collab/flow.py): floods and clients that stop reading.
# (Channels routes ASGI apps with Django's path(), which is typed for views only.)
websocket_urlpatterns = [
    path("ws/d/<str:doc_id>/", FlowControl(DocumentConsumer.as_asgi())),  # type: ignore[arg-type]
    path("ws/list/", FlowControl(DocumentListConsumer.as_asgi())),  # type: ignore[arg-type]
]

# HTTP that Channels answers itself (a stream); everything else goes to Django.
http_urlpatterns = [
    path("d/<str:doc_id>/events", FlowControl(EventsConsumer.as_asgi())),  # type: ignore[arg-type]
]
