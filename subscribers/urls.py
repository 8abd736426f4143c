from django.urls import path

from . import views

app_name = "subscribers"
urlpatterns = [
    path("", views.subscriber_list, name="list"),
    path("new", views.subscriber_create, name="create"),
    path("bulk", views.subscriber_bulk, name="bulk"),
    path("export.csv", views.subscriber_export_csv, name="export"),
    path("<int:subscriber_id>/", views.subscriber_detail, name="detail"),
    path("<int:subscriber_id>/edit", views.subscriber_edit, name="edit"),
    path("<int:subscriber_id>/topic", views.subscriber_topic, name="topic"),
    path("<int:subscriber_id>/unsubscribe", views.subscriber_unsubscribe, name="unsubscribe"),
    path("<int:subscriber_id>/delete", views.subscriber_delete, name="delete"),
    path("<int:subscriber_id>/gdpr-export", views.subscriber_gdpr_export, name="gdpr_export"),
    path("<int:subscriber_id>/erase", views.subscriber_erase, name="erase"),
    path("import/", views.import_upload, name="import"),
    path("import/<int:job_id>/mapping", views.import_mapping, name="import_mapping"),
    path("import/<int:job_id>/", views.import_detail, name="import_detail"),
    path("import/<int:job_id>/resume", views.import_resume, name="import_resume"),
    path(
        "import/<int:job_id>/rejected.csv",
        views.import_rejections_csv,
        name="import_rejections",
    ),
    path("segments/", views.segment_list, name="segments"),
    path("segments/new", views.segment_edit, name="segment_create"),
    path("segments/count", views.segment_count, name="segment_count"),
    path("segments/<int:segment_id>/", views.segment_detail, name="segment_detail"),
    path("segments/<int:segment_id>/edit", views.segment_edit, name="segment_edit"),
    path("segments/<int:segment_id>/delete", views.segment_delete, name="segment_delete"),
    path("topics/", views.topic_list, name="topics"),
    path("topics/<int:topic_id>/", views.topic_list, name="topic_edit"),
    path("topics/<int:topic_id>/delete", views.topic_delete, name="topic_delete"),
    path("fields/", views.custom_field_list, name="custom_fields"),
    path("fields/<int:field_id>/delete", views.custom_field_delete, name="custom_field_delete"),
    path("forms/", views.form_list, name="forms"),
]
