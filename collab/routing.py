from django.urls import path

from collab.consumers import DocumentConsumer

websocket_urlpatterns = [
    path("ws/d/<str:doc_id>/", DocumentConsumer.as_asgi()),
]
