"""A visitor's signup through a form, as the webhooks tell it: form.submitted, then
subscriber.confirmed once they confirm, each signed."""

import re

from django.core import mail

from tests.support.signup import post_step
from tests.support.webhook_receiver import loopback_endpoints, receiver, subscribe
from webhooks.dispatch import dispatch_due

__all__ = ["loopback_endpoints", "receiver", "subscribe"]

CONFIRM_RE = re.compile(r"https?://[^\s\"<>]+/forms/c/[^\s\"<>/]+/")


def test_a_form_signup_and_its_confirmation_reach_the_endpoint(
    client, signup_form, topics, eager, django_capture_on_commit_callbacks, subscribe, receiver
):
    subscribe("form.submitted", "subscriber.created", "subscriber.confirmed")
    with django_capture_on_commit_callbacks(execute=True):
        first = post_step(client, signup_form, email="ada@example.com", consent="1").json()
        post_step(
            client,
            signup_form,
            step=1,
            signup=first["signup"],
            first_name="Ada",
            topics=[str(topics[0].pk)],
        )
    (message,) = mail.outbox
    link = CONFIRM_RE.search(message.body).group(0)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post("/" + link.split("/", 3)[3]).status_code == 200
    dispatch_due()
    [submitted] = receiver.of_type("form.submitted")
    [created] = receiver.of_type("subscriber.created")
    [confirmed] = receiver.of_type("subscriber.confirmed")
    assert submitted.verified and created.verified and confirmed.verified
    assert submitted.payload["data"]["form_id"] == signup_form.pk
    assert submitted.payload["data"]["email"] == "ada@example.com"
    assert confirmed.payload["data"]["status"] == "active"
    assert confirmed.payload["data"]["first_name"] == "Ada"
