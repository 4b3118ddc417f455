from django.urls import path

from editor import api, exports, history_api, history_views, imports, sharing, views

handler403 = "editor.sharing.forbidden"
handler404 = "editor.api.not_found"

urlpatterns = [
    path("", views.document_list, name="document_list"),
    path("d/new/", views.document_create, name="document_create"),
    path("d/<str:doc_id>/", views.document_editor, name="document_editor"),
    path("d/<str:doc_id>/rename/", views.document_rename, name="document_rename"),
    path("d/<str:doc_id>/delete/", views.document_delete, name="document_delete"),
    path("d/<str:doc_id>/share/", sharing.share_dialog, name="document_share"),
    path("d/<str:doc_id>/share/reset/", sharing.share_reset, name="document_share_reset"),
    path("d/<str:doc_id>/export.<str:extension>", exports.export, name="document_export"),
    path("d/<str:doc_id>/history/", history_views.history_panel, name="document_history"),
    path("d/<str:doc_id>/v/<int:version>/", history_views.version_page, name="document_version"),
    path("d/<str:doc_id>/live", history_views.live_page, name="document_live"),
    path("export.zip", imports.export_library, name="library_export"),
    path("s/<str:token>", sharing.open_link, name="share_link"),
    path("api/documents/", api.documents_collection, name="api_documents"),
    path("api/documents/import", history_api.documents_import, name="api_documents_import"),
    path("api/documents/<str:doc_id>/", api.document_detail, name="api_document"),
    path("api/documents/<str:doc_id>/text", api.document_text, name="api_document_text"),
    path("api/documents/<str:doc_id>/links", api.document_links, name="api_document_links"),
    path(
        "api/documents/<str:doc_id>/versions",
        history_api.document_versions,
        name="api_document_versions",
    ),
    path(
        "api/documents/<str:doc_id>/restore",
        history_api.document_restore,
        name="api_document_restore",
    ),
    path(
        "api/documents/<str:doc_id>/links/reset",
        api.document_links_reset,
        name="api_document_links_reset",
    ),
]
