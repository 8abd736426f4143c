"""The partitions' beat tasks as deployed: run by a real Celery worker, and by two processes
at once. Partitions are DDL a transactional test commits: each test drops what it made."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from analytics import tasks
from analytics.ingest import Fact, ingest_facts
from analytics.models import Event
from analytics.partitions import (
    PARENT,
    event_partitions,
    event_partitions_ensure,
    month_start,
    partition_name,
)
from tests.support.workers import Worker, own_queues, purge_queue


def _names() -> set[str]:
    return {p.name for p in event_partitions()}


@pytest.fixture
def made(transactional_db):
    """Partitions that were not there before the test are dropped after it."""
    before = _names()
    yield
    for name in _names() - before:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {name}")
            cursor.execute(f"DROP TABLE {name}")


def _wait(condition, what: str, worker: Worker, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}\n{worker.output()}"
        time.sleep(0.2)


@pytest.mark.worker
@pytest.mark.usefixtures("made")
def test_a_worker_makes_the_coming_months_and_drops_the_expired_ones():
    now = timezone.now()
    expired = month_start(now, plus=-20)
    event_partitions_ensure(now=expired, ahead=0)
    old_event = Fact(uid="old", kind="unknown", occurred_at=expired + timedelta(days=1))
    ingest_facts([old_event])
    assert Event.objects.filter(uid="old").exists()
    coming = {partition_name(month_start(now, plus=n)) for n in (4, 5)}
    assert not coming & _names()

    purge_queue()
    with own_queues("partitions") as queues:
        worker = Worker(concurrency=1, EVENT_PARTITIONS_AHEAD="5", **queues)
        try:
            worker.wait_ready()
            tasks.event_partitions_ensure.delay()
            tasks.event_partitions_drop_expired.delay()
            _wait(lambda: coming <= _names(), "the coming months were not made", worker)
            _wait(
                lambda: partition_name(expired) not in _names(),
                "the expired month was not dropped",
                worker,
            )
        finally:
            worker.stop()
    assert not Event.objects.filter(uid="old").exists()


@pytest.mark.usefixtures("made")
def test_two_processes_making_the_same_months_at_once_make_each_once():
    now = timezone.now()
    start = threading.Barrier(2)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def beat():
        try:
            start.wait()
            results.append(event_partitions_ensure(now=now, ahead=7))
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    wanted = [partition_name(month_start(now, plus=n)) for n in (4, 5, 6, 7)]
    assert sorted(results[0] + results[1]) == wanted
    assert set(wanted) <= _names()
