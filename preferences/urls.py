from django.urls import path

from . import views

app_name = "preferences"
urlpatterns = [
    path("p/<str:token>/", views.center, name="center"),
    path("p/<str:token>/topics", views.topics, name="topics"),
    path("p/<str:token>/frequency", views.frequency, name="frequency"),
    path("p/<str:token>/pause", views.pause, name="pause"),
    path("p/<str:token>/profile", views.profile, name="profile"),
    path("p/<str:token>/export", views.export, name="export"),
    path("p/<str:token>/erase", views.erase, name="erase"),
    path("p/<str:token>/resubscribe", views.resubscribe, name="resubscribe"),
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("u/<str:token>/survey", views.survey, name="survey"),
    path("u/<str:token>/stay", views.stay, name="stay"),
    path("u/<str:token>/done", views.done, name="done"),
    path("u/<str:token>/come-back", views.come_back, name="come_back"),
]
