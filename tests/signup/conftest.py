import pytest
from django.core.cache import cache

from nofailmail.celery import app as celery_app
from subscribers.models import CustomField
from tests.support.factories import CustomFieldFactory, SignupFormFactory, TopicFactory


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


@pytest.fixture
def topics(db):
    return [
        TopicFactory(name="Weekly", slug="weekly", public_name="Weekly letter"),
        TopicFactory(name="Events", slug="events", public_name="Events"),
    ]


@pytest.fixture
def signup_form(db, topics):
    CustomFieldFactory(key="company", label="Company", type=CustomField.Type.TEXT)
    CustomFieldFactory(key="employees", label="Employees", type=CustomField.Type.NUMBER)
    return SignupFormFactory(
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
        topics=topics,
    )
