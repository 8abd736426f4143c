import time

import pytest
from django.core.cache import cache

from nofailmail.celery import app as celery_app
from signup.models import SignupForm
from signup.protection import form_token_make
from signup.tasks import signup_send_due_confirmations
from subscribers.models import CustomField, Topic


@pytest.fixture(autouse=True)
def _fresh_counters():
    """Rate limits and confirmation windows live in Redis: each test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def eager():
    """Run enqueued tasks inline (the real-worker path is tested in test_worker.py)."""
    before = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    celery_app.conf.update(task_always_eager=before[0], task_eager_propagates=before[1])


@pytest.fixture
def no_grace(settings):
    """A visitor who leaves after step 1 is owed the confirmation email at once (instead of
    after the grace time): the next sweep of the beat sends it."""
    settings.SIGNUP_CONFIRMATION_GRACE_SECONDS = 0


def beat_sweeps() -> int:
    """What the beat's every-minute task does: send the confirmations now due (inline with the
    eager fixture). Returns how many it claimed."""
    return signup_send_due_confirmations.delay().get()


@pytest.fixture
def topics(db):
    return [
        Topic.objects.create(name="Weekly", slug="weekly", public_name="Weekly letter"),
        Topic.objects.create(name="Events", slug="events", public_name="Events"),
    ]


@pytest.fixture
def signup_form(db, topics):
    CustomField.objects.create(key="company", label="Company", type=CustomField.Type.TEXT)
    CustomField.objects.create(key="employees", label="Employees", type=CustomField.Type.NUMBER)
    form = SignupForm.objects.create(
        name="Newsletter",
        steps=[
            {
                "title": "",
                "fields": [
                    {"kind": "email", "required": True},
                    {"kind": "consent", "required": True},
                    {"kind": "hidden", "key": "utm_source", "param": "utm_source"},
                ],
            },
            {
                "title": "About you",
                "fields": [
                    {"kind": "first_name", "required": True},
                    {"kind": "attribute", "key": "company"},
                    {"kind": "attribute", "key": "employees"},
                    {"kind": "topics"},
                ],
            },
        ],
        consent_text="I agree to receive the weekly letter.",
        consent_version="v3",
        allowed_origins="https://shop.example",
        min_fill_seconds=0,
    )
    form.topics.set(topics)
    return form


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
