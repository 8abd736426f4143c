"""The dispatcher's task, on its own queue (settings.CELERY_TASK_ROUTES): kicked when events
are written, and by beat every WEBHOOK_POLL_SECONDS for retries."""

from celery import shared_task
from django.core.cache import cache

from .dispatch import dispatch_due
from .emit import KICK_KEY


@shared_task
def webhooks_dispatch() -> int:
    cache.delete(KICK_KEY)  # rows written from now on kick a task of their own
    done, more = dispatch_due()
    if more:
        webhooks_dispatch.delay()  # the time budget ran out with messages still due
    return done
