from django.urls import path

from . import views

app_name = "campaigns"
urlpatterns = [
    path("", views.campaign_list, name="list"),
    path("new/", views.campaign_create, name="create"),
    path("audience-count/", views.audience_preview, name="audience_count"),
    path("sandbox/", views.sandbox_inbox, name="sandbox"),
    path("sandbox/<int:pk>/", views.sandbox_message, name="sandbox_message"),
    path("connections/", views.connection_list, name="connections"),
    path("connections/new/", views.connection_edit, name="connection_create"),
    path("connections/<int:pk>/", views.connection_edit, name="connection_edit"),
    path("<int:pk>/", views.campaign_detail, name="detail"),
    path("<int:pk>/edit/", views.campaign_edit, name="edit"),
    path("<int:pk>/progress/", views.campaign_progress_partial, name="progress"),
    path("<int:pk>/preflight/", views.campaign_preflight, name="preflight"),
    path("<int:pk>/deliveries/", views.campaign_deliveries, name="deliveries"),
    path("<int:pk>/schedule/", views.campaign_schedule, name="schedule"),
    path("<int:pk>/unschedule/", views.campaign_unschedule, name="unschedule"),
    path("<int:pk>/pause/", views.campaign_pause, name="pause"),
    path("<int:pk>/resume/", views.campaign_resume, name="resume"),
    path("<int:pk>/acknowledge/", views.campaign_acknowledge, name="acknowledge"),
    path("<int:pk>/cancel/", views.campaign_cancel, name="cancel"),
    path("<int:pk>/duplicate/", views.campaign_duplicate, name="duplicate"),
    path("<int:pk>/resolve/", views.campaign_resolve_unknown, name="resolve"),
    path("<int:pk>/test-send/", views.campaign_test_send, name="test_send"),
]
