"""The monthly partitions of analytics_event: made ahead of time, dropped when expired.

Events are range-partitioned by month of ``occurred_at`` (UTC), one table per month named
``analytics_event_y2026m12``, plus a DEFAULT partition that takes any row no month table
covers (a month beat has not made yet, a clock gone wild): an insert is never refused.

Beat makes the current month and ``EVENT_PARTITIONS_AHEAD`` months after it, so the flusher
always writes into a small, current table; and drops, a whole table at a time, the months
that ended more than ``EVENT_RETENTION_MONTHS`` ago. Only raw events go: the campaign
rollups, the subscribers' engagement and the suppression list live in other tables.

Two beat processes (or a beat and a person at the shell) may run these at once: each month is
made or dropped in its own transaction under one advisory lock, and looked for again once the
lock is held. DDL waits at most ``LOCK_TIMEOUT`` for a long report to let go of the table
(rather than queueing every insert behind it); a month that could not be done is done at the
next run.
"""

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

log = logging.getLogger(__name__)

PARENT = "analytics_event"
DEFAULT = "analytics_event_default"
LOCK_ID = 6_060_607  # pg_advisory_xact_lock key of partition maintenance
LOCK_TIMEOUT = "5s"

_BOUNDS = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime
    end: datetime


def month_start(at: datetime, *, plus: int = 0) -> datetime:
    """The first instant (UTC) of the month of ``at``, ``plus`` months later."""
    at = at.astimezone(UTC)
    index = at.year * 12 + at.month - 1 + plus
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(start: datetime) -> str:
    return f"{PARENT}_y{start:%Ym%m}"


def event_partitions() -> list[Partition]:
    """The month partitions that exist, oldest first (the DEFAULT partition is not one)."""
    if connection.vendor != "postgresql":  # manage.py on SQLite: one plain table
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = %s::regclass
            """,
            [PARENT],
        )
        rows = cursor.fetchall()
    found = []
    for name, bounds in rows:
        match = _BOUNDS.search(bounds or "")
        if match:  # the DEFAULT partition has none; times come with their offset
            start, end = (datetime.fromisoformat(v).astimezone(UTC) for v in match.groups())
            found.append(Partition(name, start, end))
    return sorted(found, key=lambda p: p.start)


def event_partitions_ensure(*, now: datetime | None = None, ahead: int | None = None) -> list[str]:
    """Make the partitions of the current month and ``ahead`` months after it (default
    EVENT_PARTITIONS_AHEAD) that do not exist; returns the names made."""
    if connection.vendor != "postgresql":
        return []
    now = now or timezone.now()
    ahead = settings.EVENT_PARTITIONS_AHEAD if ahead is None else ahead
    made = []
    for n in range(ahead + 1):
        start = month_start(now, plus=n)
        try:
            if _ensure_month(start):
                made.append(partition_name(start))
        except OperationalError:  # lock_timeout: a long reader held the table; next run
            log.warning("event partition %s not made this time", partition_name(start))
    return made


def _ensure_month(start: datetime) -> bool:
    """Make one month's partition, moving in the rows the DEFAULT partition took for it.

    Made as a plain table and then attached, which locks the parent far more lightly than
    CREATE TABLE ... PARTITION OF (SHARE UPDATE EXCLUSIVE: inserts and reads go on).
    """
    end = month_start(start, plus=1)
    name = partition_name(start)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_ID])
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        if any(p.start < end and start < p.end for p in event_partitions()):
            return False
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {name} (LIKE {PARENT} INCLUDING DEFAULTS)")
        # No insert may land in DEFAULT for this month between the move and the attach
        # (the attach would then fail); reads go on.
        cursor.execute(f"LOCK TABLE {DEFAULT} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT} "  # noqa: S608
            "WHERE occurred_at >= %s AND occurred_at < %s RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved",
            [start, end],
        )
        if cursor.rowcount:
            log.info("moved %d events from %s into %s", cursor.rowcount, DEFAULT, name)
        cursor.execute(
            f"ALTER TABLE {PARENT} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)",
            [start, end],
        )
    return True


def event_partitions_drop_expired(
    *, now: datetime | None = None, months: int | None = None
) -> list[str]:
    """Drop the partitions of months that ended more than ``months`` (default
    EVENT_RETENTION_MONTHS; 0 keeps every event) months before the current one, and delete
    the DEFAULT partition's events as old; returns the names dropped.

    Detached first, then dropped: the detach is the moment readers stop seeing the month.
    """
    now = now or timezone.now()
    months = settings.EVENT_RETENTION_MONTHS if months is None else months
    if months <= 0 or connection.vendor != "postgresql":
        return []
    cutoff = month_start(now, plus=-months)
    dropped = []
    for part in event_partitions():
        if part.end > cutoff:
            break
        try:
            if _drop(part):
                dropped.append(part.name)
        except OperationalError:
            log.warning("event partition %s not dropped this time", part.name)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {DEFAULT} WHERE occurred_at < %s", [cutoff])  # noqa: S608
    return dropped


def _drop(part: Partition) -> bool:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_ID])
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        if part.name not in {p.name for p in event_partitions()}:
            return False  # another run dropped it meanwhile
        cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {part.name}")
        cursor.execute(f"DROP TABLE {part.name}")
    log.info("dropped event partition %s (events before %s)", part.name, part.end.date())
    return True
