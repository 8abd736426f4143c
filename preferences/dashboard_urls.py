from django.urls import path

from . import dashboard

app_name = "leaving"
urlpatterns = [
    path("", dashboard.report, name="report"),
    path("reasons/", dashboard.reasons, name="reasons"),
    path("reasons/<int:reason_id>/", dashboard.reason_edit, name="reason_edit"),
    path("settings/", dashboard.center_settings, name="settings"),
]
