from django.urls import path

from . import views

app_name = "api"

urlpatterns = [
    path("", views.key_list, name="keys"),
    path("<int:key_id>/revoke", views.key_revoke, name="key_revoke"),
]
