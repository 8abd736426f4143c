from django.urls import path

from . import views

urlpatterns = [
    path("", views.settings_home, name="settings"),
    path("users/new", views.user_create, name="user_create"),
    path("users/<int:user_id>/role", views.user_role, name="user_role"),
    path("users/<int:user_id>/delete", views.user_delete, name="user_delete"),
]
