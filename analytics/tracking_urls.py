# The public tracking endpoints (open pixel, click redirect) are mounted at /t/.
from django.urls import path

from . import tracking_views

urlpatterns = [
    path("o/<path:token>", tracking_views.open_pixel, name="tracking-open"),
    path("c/<path:token>", tracking_views.click_redirect, name="tracking-click"),
    # A constant GIF: the baseline bench/tracking.py compares the real endpoints with.
    path("ping.gif", tracking_views.trivial_gif, name="tracking-ping"),
]
