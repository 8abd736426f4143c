"""A visitor filling in a signup form, as the embed script posts it."""

import time

from signup.protection import form_token_make
from signup.tasks import signup_send_due_confirmations


def beat_sweeps() -> int:
    """What the beat's every-minute task does: send the confirmations now due (inline with the
    eager fixture). Returns how many it claimed."""
    return signup_send_due_confirmations.delay().get()


def token_for(form, *, age: float = 10) -> str:
    """A form token issued ``age`` seconds ago (as if the visitor took that long to fill it)."""
    real = time.time
    try:
        time.time = lambda: real() - age
        return form_token_make(form.pk)
    finally:
        time.time = real


def post_step(client, form, step=0, *, token=None, ip="203.0.113.5", HTTP_ORIGIN=None, **data):
    body = {"token": token or token_for(form), "step": str(step), "format": "json", **data}
    extra = {"HTTP_ORIGIN": HTTP_ORIGIN} if HTTP_ORIGIN else {}
    return client.post(
        f"/forms/f/{form.public_id}/submit",
        body,
        REMOTE_ADDR=ip,
        HTTP_USER_AGENT="pytest-agent",
        **extra,
    )
