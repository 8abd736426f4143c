from django.urls import path

from . import views

app_name = "templates_app"
urlpatterns = [
    path("", views.template_list, name="list"),
    path("new/<str:kind>/", views.template_create, name="create"),
    path("lint/", views.lint_preview, name="lint"),
    path("<int:pk>/", views.template_edit, name="edit"),
    path("<int:pk>/duplicate/", views.template_duplicate, name="duplicate"),
    path("<int:pk>/delete/", views.template_delete, name="delete"),
    path("<int:pk>/preview/", views.template_preview, name="preview"),
    path("<int:pk>/versions/", views.version_list, name="versions"),
    path("<int:pk>/versions/<int:number>/restore/", views.version_restore, name="restore"),
    path("images/", views.image_list, name="images"),
    path("images/upload/", views.image_upload, name="image_upload"),
    path("images/<int:pk>/delete/", views.image_delete, name="image_delete"),
    path("i/<str:name>", views.image_file, name="image_file"),
    path("reply/", views.reply_start, name="reply_start"),
    path("reply/<int:pk>/", views.reply_compose, name="reply_compose"),
    path("replies/", views.sent_replies, name="sent_replies"),
]
