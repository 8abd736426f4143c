"""Thin Celery tasks: they take ids and call the pipeline or the dispatcher."""

from celery import shared_task

from .dispatch import dispatch_due
from .send_tasks import campaign_kick, campaign_send
from .transactional import transactional_send

__all__ = ["campaign_kick", "campaign_send", "campaigns_dispatch", "transactional_send"]


@shared_task
def campaigns_dispatch() -> dict:
    """The one periodic task (django-celery-beat): starts due campaigns, creates recurring
    occurrences, reconciles dead claims and keeps running campaigns moving."""
    return dispatch_due()
