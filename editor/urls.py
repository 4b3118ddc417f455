from django.urls import path

from editor import views

urlpatterns = [
    path("", views.document_list, name="document_list"),
    path("d/new/", views.document_create, name="document_create"),
    path("d/<str:doc_id>/", views.document_editor, name="document_editor"),
    path("d/<str:doc_id>/rename/", views.document_rename, name="document_rename"),
    path("d/<str:doc_id>/delete/", views.document_delete, name="document_delete"),
]
