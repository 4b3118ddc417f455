from django.urls import path

from collab.consumers import DocumentConsumer
from collab.list_consumer import DocumentListConsumer

websocket_urlpatterns = [
    path("ws/d/<str:doc_id>/", DocumentConsumer.as_asgi()),
    path("ws/list/", DocumentListConsumer.as_asgi()),
]
