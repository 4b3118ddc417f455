from django.urls import path

from editor import api, exports, views

urlpatterns = [
    path("", views.document_list, name="document_list"),
    path("d/new/", views.document_create, name="document_create"),
    path("d/<str:doc_id>/", views.document_editor, name="document_editor"),
    path("d/<str:doc_id>/rename/", views.document_rename, name="document_rename"),
    path("d/<str:doc_id>/delete/", views.document_delete, name="document_delete"),
    path("d/<str:doc_id>/export.<str:extension>", exports.export, name="document_export"),
    path("api/documents/", api.documents_collection, name="api_documents"),
    path("api/documents/<str:doc_id>/", api.document_detail, name="api_document"),
    path("api/documents/<str:doc_id>/text", api.document_text, name="api_document_text"),
]
