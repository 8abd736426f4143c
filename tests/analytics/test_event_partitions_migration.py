"""Migration 0013 turns an existing events table into the partitioned one in place: every row
kept in its month's partition (or DEFAULT), ids kept and continued, the uid still unique."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from analytics.ingest import Fact, ingest_facts
from analytics.models import Event
from analytics.partitions import DEFAULT, event_partitions

pytestmark = pytest.mark.django_db

BEFORE = [("analytics", "0012_readiness_runs")]
AFTER = [("analytics", "0013_event_partitions")]
ROWS = [  # uid, occurred_at
    ("a", "2024-02-29 23:59:59.999999+00"),
    ("b", "2024-03-01 00:00:00+00"),
    ("c", "2025-07-14 12:00:00+00"),
    ("d", "1990-01-01 00:00:00+00"),  # before any month made: DEFAULT
    ("e", "2190-01-01 00:00:00+00"),  # far ahead: DEFAULT
]


def _migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def _kind() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = 'analytics_event'")
        return cursor.fetchone()[0]


def test_existing_events_are_moved_into_their_months_and_back():
    _migrate(BEFORE)
    assert _kind() == "r"
    with connection.cursor() as cursor:
        for n, (uid, at) in enumerate(ROWS):
            cursor.execute(
                "INSERT INTO analytics_event (id, uid, kind, occurred_at, received_at, "
                "email_hash, classification, reason, bounce_type, user_agent, method, prefetch, "
                "esp, message_id, url) VALUES (%s, %s, 'opened', %s, now(), '', '', '', '', "
                "'', 'GET', false, '', '', '')",
                [100 + n, uid, at],
            )
        cursor.execute("SELECT setval(pg_get_serial_sequence('analytics_event', 'id'), 500)")

    _migrate(AFTER)
    assert _kind() == "p"
    with connection.cursor() as cursor:
        cursor.execute("SELECT uid, id, tableoid::regclass::text FROM analytics_event ORDER BY uid")
        rows = cursor.fetchall()
    assert rows == [
        ("a", 100, "analytics_event_y2024m02"),
        ("b", 101, "analytics_event_y2024m03"),
        ("c", 102, "analytics_event_y2025m07"),
        ("d", 103, DEFAULT),
        ("e", 104, DEFAULT),
    ]
    assert {"analytics_event_y2024m02", "analytics_event_y2025m07"} <= {
        p.name for p in event_partitions()
    }
    # New events continue the ids; a replay of an old one is refused by (uid, occurred_at).
    fresh = Event.objects.create(
        uid="f", kind="opened", occurred_at=Event.objects.get(uid="c").occurred_at
    )
    assert fresh.pk > 500 and Event.objects.get(pk=fresh.pk).uid == "f"
    replay = Fact(uid="c", kind="opened", occurred_at=fresh.occurred_at, stable_time=True)
    assert ingest_facts([replay]) == 0

    _migrate(BEFORE)
    assert _kind() == "r"
    assert sorted(Event.objects.values_list("uid", "id")) == [
        ("a", 100), ("b", 101), ("c", 102), ("d", 103), ("e", 104), ("f", fresh.pk)
    ]  # fmt: skip
    assert Event.objects.create(uid="g", kind="opened", occurred_at=fresh.occurred_at).pk > fresh.pk
    _migrate(AFTER)
    assert _kind() == "p"
