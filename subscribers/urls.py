from django.urls import path

from . import views

app_name = "subscribers"
urlpatterns = [
    path("", views.subscriber_list, name="list"),
    path("forms/", views.form_list, name="forms"),
]
