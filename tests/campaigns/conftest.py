import pytest

from nofailmail.celery import app as celery_app
from tests.support.sending import QUEUE, TTL


@pytest.fixture
def own_queue(monkeypatch):
    """Our workers and the tasks we send use a queue no other test worker listens to."""
    monkeypatch.setenv("CAMPAIGN_CLAIM_TTL", TTL)
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = QUEUE
    try:
        yield
    finally:
        celery_app.conf.task_default_queue = previous
