from django.urls import path

from . import readiness_views, views

app_name = "analytics"
urlpatterns = [
    path("", views.analytics_home, name="home"),
    path("campaigns/<int:pk>/", views.campaign_report, name="campaign"),
    path("campaigns/<int:pk>/tracking/", views.campaign_tracking, name="campaign-tracking"),
    path("campaigns/<int:pk>/export.csv", views.campaign_csv, name="campaign-csv"),
    path("alerts/<int:pk>/resolve/", views.alert_resolve_view, name="alert-resolve"),
    path("domains/", views.domain_list, name="domains"),
    path("domains/add/", views.domain_save, name="domain-add"),
    path("domains/<int:pk>/", views.domain_save, name="domain-save"),
    path("domains/<int:pk>/check/", views.domain_check, name="domain-check"),
    path("domains/<int:pk>/dkim/", views.dkim_key_add, name="dkim-add"),
    path(
        "domains/<int:pk>/readiness/",
        readiness_views.domain_readiness,
        name="domain-readiness",
    ),
    path(
        "domains/<int:pk>/readiness/run/",
        readiness_views.domain_readiness_run,
        name="domain-readiness-run",
    ),
    path(
        "dkim/<int:pk>/<str:action>/",
        views.dkim_key_action,
        name="dkim-action",
    ),
    path(
        "subscribers/<int:pk>/timeline/",
        views.subscriber_timeline_view,
        name="subscriber-timeline",
    ),
    path("bounces/", views.bounce_messages, name="bounces"),
    path("hygiene/", views.hygiene, name="hygiene"),
    path("hygiene/policy/", views.hygiene_save, name="hygiene-save"),
    path("hygiene/preview/", views.hygiene_preview, name="hygiene-preview"),
    path("hygiene/run/", views.hygiene_run, name="hygiene-run"),
]
