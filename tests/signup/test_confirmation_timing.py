"""When the double opt-in email goes out: after the last step (so it can greet the visitor by the
name step 2 asks), or after a grace time for a visitor who leaves after step 1; once either way.
And the pages say the right thing for the state: pending confirmation or confirmed."""

import datetime as dt
import re
import threading

from django.core import mail
from django.db import connection
from django.db.models import F
from django.test import Client

from signup.models import Signup
from tests.support.signup import beat_sweeps, post_step

CONFIRM_RE = re.compile(r"https?://[^\s\"<>]+/forms/c/[^\s\"<>/]+/")
PENDING = "Almost there: check your inbox to confirm."


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def _step_one(client, form, email="ada@example.com"):
    return post_step(client, form, email=email, consent="1").json()


def _grace_time_passes():
    """Five minutes and a second later, as far as the owed emails are concerned."""
    Signup.objects.update(confirmation_due_at=F("confirmation_due_at") - dt.timedelta(seconds=301))


def test_the_confirmation_waits_for_the_last_step_and_greets_by_name(
    client, signup_form, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = _step_one(client, signup_form)
    assert mail.outbox == []
    assert beat_sweeps() == 0  # the grace time is not over: nothing is due
    with django_capture_on_commit_callbacks(execute=True):
        post_step(client, signup_form, step=1, signup=first["signup"], first_name="Ada")
    (message,) = mail.outbox
    assert "Hello Ada," in message.body and "Hello there" not in message.body
    _grace_time_passes()
    assert beat_sweeps() == 0  # sent already: the sweep finds nothing owed
    assert len(mail.outbox) == 1


def test_a_visitor_who_leaves_after_step_one_gets_it_after_the_grace_time_once(
    client, signup_form, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = _step_one(client, signup_form)
    _grace_time_passes()
    assert beat_sweeps() == 1
    assert beat_sweeps() == 0
    (message,) = mail.outbox
    assert message.to == ["ada@example.com"] and CONFIRM_RE.search(message.body)
    # Coming back to finish step 2 later sends nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        done = post_step(client, signup_form, step=1, signup=first["signup"], first_name="Ada")
    assert done.json()["done"] is True
    assert len(mail.outbox) == 1
    assert Signup.objects.get().confirmation_sent_at is not None


def test_a_one_step_form_sends_the_confirmation_at_once(
    client, signup_form, eager, django_capture_on_commit_callbacks
):
    signup_form.steps = signup_form.steps[:1]
    signup_form.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert post_step(client, signup_form, email="ada@example.com", consent="1").json()["done"]
    assert len(mail.outbox) == 1
    assert beat_sweeps() == 0


def test_the_last_step_and_the_sweep_racing_send_one_email(
    transactional_db, signup_form, eager, no_grace
):
    first = _step_one(Client(), signup_form)
    barrier = threading.Barrier(2)

    def finish():
        try:
            barrier.wait()
            post_step(Client(), signup_form, step=1, signup=first["signup"], first_name="Ada")
        finally:
            connection.close()

    def sweep():
        try:
            barrier.wait()
            beat_sweeps()
        finally:
            connection.close()

    threads = [threading.Thread(target=finish), threading.Thread(target=sweep)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(mail.outbox) == 1


def test_the_confirmed_page_does_not_repeat_the_pending_message(
    client, signup_form, eager, django_capture_on_commit_callbacks
):
    signup_form.success_message = PENDING
    signup_form.save()
    with django_capture_on_commit_callbacks(execute=True):
        first = _step_one(client, signup_form)
        done = post_step(client, signup_form, step=1, signup=first["signup"], first_name="Ada")
    assert done.json()["message"] == PENDING  # not confirmed yet: the form's own words
    link = _path(CONFIRM_RE.search(mail.outbox[0].body).group(0))
    page = client.post(link).content.decode()
    assert "You are subscribed" in page and "Thank you for confirming." in page
    assert "check your inbox" not in page.lower()
    # Opening the link again later shows the same confirmed page.
    again = client.get(link).content.decode()
    assert "You are subscribed" in again and "check your inbox" not in again.lower()


def test_signing_up_again_once_confirmed_is_not_told_to_check_the_inbox(
    client, signup_form, eager, django_capture_on_commit_callbacks
):
    signup_form.success_message = PENDING
    signup_form.save()
    with django_capture_on_commit_callbacks(execute=True):
        first = _step_one(client, signup_form)
        post_step(client, signup_form, step=1, signup=first["signup"], first_name="Ada")
    client.post(_path(CONFIRM_RE.search(mail.outbox[0].body).group(0)))
    with django_capture_on_commit_callbacks(execute=True):
        again = _step_one(client, signup_form)
        done = post_step(client, signup_form, step=1, signup=again["signup"], first_name="Ada")
    assert done.json()["message"] == "Thanks, you are subscribed!"
    assert len(mail.outbox) == 1  # nothing to confirm: no email either
