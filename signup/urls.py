from django.urls import path

from . import public, views

app_name = "signup"
urlpatterns = [
    # Dashboard
    path("", views.form_list, name="list"),
    path("new/", views.form_create, name="create"),
    path("preview/", views.form_preview, name="preview"),
    path("<int:pk>/", views.form_detail, name="detail"),
    path("<int:pk>/edit/", views.form_edit, name="edit"),
    path("<int:pk>/delete/", views.form_delete, name="delete"),
    path("lead-magnets/", views.lead_magnet_list, name="lead_magnets"),
    path("lead-magnets/new/", views.lead_magnet_create, name="lead_magnet_create"),
    path("lead-magnets/<int:pk>/delete/", views.lead_magnet_delete, name="lead_magnet_delete"),
    # Public (visitors): hosted page, iframe, embed configuration, submit, confirm, download
    path("f/<str:public_id>/", public.hosted_page, name="page"),
    path("f/<str:public_id>/frame/", public.frame, name="frame"),
    path("f/<str:public_id>/config.json", public.config, name="config"),
    path("f/<str:public_id>/submit", public.submit, name="submit"),
    path("c/<str:token>/", public.confirm, name="confirm"),
    path("d/<str:token>/", public.download, name="download"),
]
