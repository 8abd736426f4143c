import uuid

import pytest
from django.core.cache import cache

from core.tasks import worker_ping
from nofailmail.celery import app as celery_app


@pytest.mark.worker
def test_a_task_runs_on_a_real_worker_over_redis(worker_process, transactional_db):
    assert celery_app.conf.broker_url.startswith("redis://")
    token = uuid.uuid4().hex
    worker_ping.delay(token)
    for _ in range(200):
        if cache.get(f"worker-ping:{token}") == "pong":
            break
        import time

        time.sleep(0.05)
    assert cache.get(f"worker-ping:{token}") == "pong"
    assert "worker_ping" in worker_process.output()


def test_reliability_settings_are_on():
    assert celery_app.conf.task_acks_late is True
    assert celery_app.conf.task_reject_on_worker_lost is True
    assert celery_app.conf.worker_prefetch_multiplier == 1
    assert celery_app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
