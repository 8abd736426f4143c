"""Thin Celery tasks: ids in, a service or an email out."""

from celery import shared_task

from .emails import build_message
from .models import Signup
from .services import (
    signups_claim_due_confirmations,
    signups_claim_reminders,
    subscribers_purge_unconfirmed,
)


def _signup(signup_id: int) -> Signup | None:
    return (
        Signup.objects.select_related("subscriber", "form", "form__lead_magnet")
        .filter(pk=signup_id)
        .first()
    )


@shared_task
def signup_send_confirmation(signup_id: int, reminder: bool = False) -> None:
    signup = _signup(signup_id)
    # Confirmed (or purged) in the meantime: nothing to ask any more.
    if signup is None or signup.confirmed_at is not None:
        return
    build_message(signup, "confirmation", reminder=reminder).send(fail_silently=False)


@shared_task
def signup_send_welcome(signup_id: int) -> None:
    signup = _signup(signup_id)
    if signup is None or signup.confirmed_at is None:
        return
    build_message(signup, "welcome").send(fail_silently=False)


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
