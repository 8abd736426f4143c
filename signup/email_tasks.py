"""The signup emails' tasks, enqueued by services after commit.

Their own module (registered under their ``signup.tasks.*`` names) so that services can enqueue
them without importing ``tasks.py``, whose periodic tasks import services."""

from celery import shared_task

from .emails import build_message
from .models import Signup


def _signup(signup_id: int) -> Signup | None:
    return (
        Signup.objects.select_related("subscriber", "form", "form__lead_magnet")
        .filter(pk=signup_id)
        .first()
    )


@shared_task(name="signup.tasks.signup_send_confirmation")
def signup_send_confirmation(signup_id: int, reminder: bool = False) -> None:
    signup = _signup(signup_id)
    # Confirmed (or purged) in the meantime: nothing to ask any more.
    if signup is None or signup.confirmed_at is not None:
        return
    build_message(signup, "confirmation", reminder=reminder).send(fail_silently=False)


@shared_task(name="signup.tasks.signup_send_welcome")
def signup_send_welcome(signup_id: int) -> None:
    signup = _signup(signup_id)
    if signup is None or signup.confirmed_at is None:
        return
    build_message(signup, "welcome").send(fail_silently=False)
