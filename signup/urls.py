from django.urls import path

from subscribers import views as subscriber_views

app_name = "signup"
urlpatterns = [
    path("", subscriber_views.form_list, name="list"),
]
