from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from api import views as api_views
from api.v1 import api as api_v1
from core import views as core_views

from . import home

urlpatterns = [
    path("", home.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("favicon.ico", core_views.favicon, name="favicon"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/", include("core.urls")),
    path("subscribers/", include("subscribers.urls")),
    path("templates/", include("templates_app.urls")),
    path("campaigns/", include("campaigns.urls")),
    path("analytics/", include("analytics.urls")),
    path("webhooks/", include("webhooks.urls")),
    path("r/", include("preferences.urls")),
    path("leaving/", include("preferences.dashboard_urls")),
    path("t/", include("analytics.tracking_urls")),
    path("forms/", include("signup.urls")),
    # anymail's ESP webhooks, the tracking ones guarded against malformed bodies.
    path("anymail/", include("analytics.webhook_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", api_v1.urls),
    re_path(r"^api/(?P<path>.*)$", api_views.api_not_found, name="api_not_found"),
    path("settings/api-keys/", include("api.urls")),
]

handler403 = "core.views.permission_denied"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
