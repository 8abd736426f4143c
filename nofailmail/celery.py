import os

from celery import Celery
from celery.signals import worker_process_init
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nofailmail.settings")

app = Celery("nofailmail")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _warm_up(**kwargs) -> None:
    """Load the URLconf once per pool process, at start: the first message of every sending
    task otherwise paid for importing every app's urls (half a second of CPU)."""
    get_resolver().url_patterns  # noqa: B018 (the property loads them)
