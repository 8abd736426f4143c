"""Thin Celery tasks: ids in, a service or an email out (the emails' tasks, which services
enqueue, live in ``email_tasks``: this module imports services)."""

from celery import shared_task

from .email_tasks import signup_send_confirmation, signup_send_welcome
from .services import (
    signups_claim_due_confirmations,
    signups_claim_reminders,
    subscribers_purge_unconfirmed,
)

__all__ = [
    "signup_purge_unconfirmed",
    "signup_send_confirmation",
    "signup_send_due_confirmations",
    "signup_send_reminders",
    "signup_send_welcome",
]


@shared_task
def signup_send_reminders() -> int:
    """Periodic (django-celery-beat, hourly): one reminder 48 h after an unanswered email."""
    ids = signups_claim_reminders()
    for signup_id in ids:
        signup_send_confirmation.delay(signup_id, reminder=True)
    return len(ids)


@shared_task
def signup_send_due_confirmations() -> int:
    """Periodic (django-celery-beat, every minute): the confirmation email of visitors who left
    a multi-step form before its last step, once the grace time has passed."""
    ids = signups_claim_due_confirmations()
    for signup_id in ids:
        signup_send_confirmation.delay(signup_id)
    return len(ids)


@shared_task
def signup_purge_unconfirmed() -> int:
    """Periodic (django-celery-beat, daily): forget people who never confirmed."""
    return subscribers_purge_unconfirmed()
