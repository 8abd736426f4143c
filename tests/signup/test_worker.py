"""The confirmation email goes through a real Celery worker over Redis to a real SMTP server."""

import re
import uuid

import pytest
from django.test import Client

from nofailmail.celery import app as celery_app
from signup.models import Signup
from signup.tasks import signup_send_due_confirmations
from subscribers.models import Subscriber
from tests.support.signup import post_step
from tests.support.smtp import Sink, text_of
from tests.support.workers import Worker

pytestmark = pytest.mark.worker


@pytest.fixture
def smtp_worker(transactional_db, settings):
    """Our own worker, on its own queue (so no other worker of the session takes the task),
    configured to send through the SMTP sink."""
    sink = Sink().start()
    queue = f"signup-test-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        CELERY_QUEUE=queue,
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(sink.port),
        SITE_URL="http://forms.example.test",
    )
    before = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    try:
        worker.wait_ready()
        yield sink, worker
    finally:
        celery_app.conf.task_default_queue = before
        worker.stop()
        sink.stop()


def test_the_last_step_enqueues_the_confirmation_after_commit_and_a_worker_sends_it(
    smtp_worker, signup_form
):
    sink, worker = smtp_worker
    client = Client()
    first = post_step(client, signup_form, email="ada@example.com", consent="1")
    assert first.status_code == 200
    assert Signup.objects.get().confirmation_sent_at is None  # step 2 asks the name: it waits
    done = post_step(client, signup_form, step=1, signup=first.json()["signup"], first_name="Ada")
    assert done.status_code == 200
    (message,) = sink.wait_for(1, timeout=60)
    assert message["To"] == "ada@example.com"
    assert "Hello Ada," in text_of(message)
    assert re.search(r"http://forms\.example\.test/forms/c/[^/\s]+/", text_of(message))
    assert "signup_send_confirmation" in worker.output()
    signup = Signup.objects.get()
    assert signup.confirmation_sent_at is not None
    assert Subscriber.objects.get().status == Subscriber.Status.UNCONFIRMED


def test_the_beat_sweep_on_a_worker_sends_the_confirmation_of_a_visitor_who_left(
    smtp_worker, signup_form, settings
):
    sink, worker = smtp_worker
    settings.SIGNUP_CONFIRMATION_GRACE_SECONDS = 0  # as if the grace time were over
    post_step(Client(), signup_form, email="ada@example.com", consent="1")
    signup_send_due_confirmations.delay()
    (message,) = sink.wait_for(1, timeout=60)
    assert message["To"] == "ada@example.com" and "Hello there," in text_of(message)
    assert "signup_send_due_confirmations" in worker.output()
