from django.urls import path

from collab.consumers import DocumentConsumer
from collab.events import EventsConsumer
from collab.list_consumer import DocumentListConsumer

websocket_urlpatterns = [
    path("ws/d/<str:doc_id>/", DocumentConsumer.as_asgi()),
    path("ws/list/", DocumentListConsumer.as_asgi()),
]

# HTTP that Channels answers itself (a stream); everything else goes to Django.
http_urlpatterns = [
    path("d/<str:doc_id>/events", EventsConsumer.as_asgi()),
]
