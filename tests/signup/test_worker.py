"""The confirmation email goes through a real Celery worker over Redis to a real SMTP server."""

import re
import uuid

import pytest
from django.test import Client

from nofailmail.celery import app as celery_app
from signup.models import Signup
from subscribers.models import Subscriber
from tests.support.smtp import Sink, text_of
from tests.support.workers import Worker

from .conftest import post_step

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


def test_step_one_enqueues_the_confirmation_after_commit_and_a_worker_sends_it(
    smtp_worker, signup_form
):
    sink, worker = smtp_worker
    response = post_step(Client(), signup_form, email="ada@example.com", consent="1")
    assert response.status_code == 200
    (message,) = sink.wait_for(1, timeout=60)
    assert message["To"] == "ada@example.com"
    assert re.search(r"http://forms\.example\.test/forms/c/[^/\s]+/", text_of(message))
    assert "signup_send_confirmation" in worker.output()
    signup = Signup.objects.get()
    assert signup.confirmation_sent_at is not None
    assert Subscriber.objects.get().status == Subscriber.Status.UNCONFIRMED
