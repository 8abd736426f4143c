"""analytics_event becomes a table range-partitioned by month of occurred_at.

Why: at 100M events the tracking flusher paid 40% more per event than on an empty table (its
inserts walk indexes of the whole history); into a current-month partition they walk small
ones. And retention drops a month as a table instead of deleting rows one by one.

The table is converted in place, in this migration's transaction: the old one is renamed,
the partitioned one created beside it with a partition for every month its rows fall in
(from 2000 to a few months ahead; any other time goes to the DEFAULT partition, so no row is
ever refused), the rows copied, the indexes built on the parent once the rows are in (they
propagate to every partition, present and future), the ids continued from the old sequence,
and the old table dropped. It takes an exclusive lock for as long as the copy: on a large
installation, run it in a maintenance window.

PostgreSQL wants the partition key in every unique index: the primary key becomes
(id, occurred_at) and the uid constraint (uid, occurred_at). Django's state keeps ``id`` as
the primary key (see the Event docstring); only the constraint changes there.

On SQLite (``manage.py migrate`` with no DATABASE_URL) there is no partitioning: only the
constraint changes.
"""

from datetime import UTC, datetime

from django.db import migrations, models

OLD = "analytics_event_unpartitioned"
SEQUENCE = "analytics_event_id_seq"
AHEAD = 3  # months after the current one made now; beat keeps EVENT_PARTITIONS_AHEAD made


def _month(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)


def _create_partition(cursor, start: datetime) -> None:
    end = _month(start.year, start.month + 1)
    cursor.execute(
        f"CREATE TABLE analytics_event_y{start:%Ym%m} PARTITION OF analytics_event "
        "FOR VALUES FROM (%s) TO (%s)",
        [start, end],
    )


def _plain_indexes(cursor, table: str) -> list[tuple[str, str]]:
    """(name, definition) of the table's indexes that back no constraint."""
    cursor.execute(
        """
        SELECT i.relname, pg_get_indexdef(i.oid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = %s::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)
        ORDER BY i.relname
        """,
        [table],
    )
    return cursor.fetchall()


def _old_constraint():
    return models.UniqueConstraint(fields=["uid"], name="event_uid")


def _new_constraint():
    return models.UniqueConstraint(fields=["uid", "occurred_at"], name="event_uid")


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        event = apps.get_model("analytics", "Event")
        schema_editor.remove_constraint(event, _old_constraint())
        schema_editor.add_constraint(event, _new_constraint())
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("LOCK TABLE analytics_event IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            "SELECT pg_get_serial_sequence('analytics_event', 'id'), "
            "(SELECT max(id) FROM analytics_event)"
        )
        old_sequence, max_id = cursor.fetchone()
        cursor.execute(f"SELECT last_value, is_called FROM {old_sequence}")  # noqa: S608
        last_value, is_called = cursor.fetchone()
        last_id = max(max_id or 0, last_value if is_called else 0)
        indexes = _plain_indexes(cursor, "analytics_event")

        cursor.execute(f"ALTER TABLE analytics_event RENAME TO {OLD}")
        cursor.execute(f"ALTER TABLE {OLD} DROP CONSTRAINT event_uid")
        cursor.execute(f"ALTER TABLE {OLD} DROP CONSTRAINT analytics_event_pkey")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")

        cursor.execute(
            f"CREATE TABLE analytics_event (LIKE {OLD} INCLUDING DEFAULTS) "
            "PARTITION BY RANGE (occurred_at)"
        )
        cursor.execute("CREATE TABLE analytics_event_default PARTITION OF analytics_event DEFAULT")
        cursor.execute(
            f"""
            SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC') FROM {OLD}
            WHERE occurred_at >= '2000-01-01 00:00+00'
              AND occurred_at < date_trunc('month', now() AT TIME ZONE 'UTC')
            """  # noqa: S608
        )
        now = datetime.now(UTC)
        months = {m.replace(tzinfo=UTC) for (m,) in cursor.fetchall()}
        months |= {_month(now.year, now.month + n) for n in range(AHEAD + 1)}
        for start in sorted(months):
            _create_partition(cursor, start)

        cursor.execute(f"INSERT INTO analytics_event SELECT * FROM {OLD}")  # noqa: S608
        cursor.execute(f"DROP TABLE {OLD}")

        # Built once the rows are in; on the parent, so every partition has them.
        cursor.execute(
            "ALTER TABLE analytics_event ADD CONSTRAINT analytics_event_pkey "
            "PRIMARY KEY (id, occurred_at)"
        )
        cursor.execute(
            "ALTER TABLE analytics_event ADD CONSTRAINT event_uid UNIQUE (uid, occurred_at)"
        )
        for _, definition in indexes:  # read before the rename: they name analytics_event
            cursor.execute(definition)

        # A plain sequence owned by the column (an identity column on a partitioned table is
        # not carried by its partitions before PostgreSQL 17), continuing the old one's ids.
        cursor.execute(f"CREATE SEQUENCE {SEQUENCE} OWNED BY analytics_event.id")
        if last_id:
            cursor.execute("SELECT setval(%s, %s)", [SEQUENCE, last_id])
        cursor.execute(
            f"ALTER TABLE analytics_event ALTER COLUMN id SET DEFAULT nextval('{SEQUENCE}')"
        )
        # Autovacuum analyzes the partitions, never the parent whose statistics joins use.
        cursor.execute("ANALYZE analytics_event")


def unpartition(apps, schema_editor):
    """Back to one table; of events that share a uid (possible only across times), the
    first recorded is kept."""
    if schema_editor.connection.vendor != "postgresql":
        event = apps.get_model("analytics", "Event")
        schema_editor.remove_constraint(event, _new_constraint())
        schema_editor.add_constraint(event, _old_constraint())
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("LOCK TABLE analytics_event IN ACCESS EXCLUSIVE MODE")
        indexes = _plain_indexes(cursor, "analytics_event")
        cursor.execute("SELECT last_value, is_called FROM analytics_event_id_seq")
        last_value, is_called = cursor.fetchone()
        cursor.execute(f"CREATE TABLE {OLD} (LIKE analytics_event)")
        cursor.execute(
            f"INSERT INTO {OLD} SELECT DISTINCT ON (uid) * FROM analytics_event "  # noqa: S608
            "ORDER BY uid, id"
        )
        cursor.execute("DROP TABLE analytics_event")  # its partitions and sequence with it
        cursor.execute(f"ALTER TABLE {OLD} RENAME TO analytics_event")
        cursor.execute("ALTER TABLE analytics_event ADD PRIMARY KEY (id)")
        cursor.execute("ALTER TABLE analytics_event ADD CONSTRAINT event_uid UNIQUE (uid)")
        for _, definition in indexes:
            cursor.execute(definition.replace(" ON ONLY ", " ON "))
        cursor.execute(
            "ALTER TABLE analytics_event ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY"
        )
        cursor.execute("SELECT coalesce(max(id), 0) FROM analytics_event")
        last_id = max(cursor.fetchone()[0], last_value if is_called else 0)
        if last_id:
            cursor.execute(
                f"ALTER TABLE analytics_event ALTER COLUMN id RESTART WITH {last_id + 1}"
            )


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0012_readiness_runs"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(partition, unpartition)],
            state_operations=[
                migrations.RemoveConstraint(model_name="event", name="event_uid"),
                migrations.AddConstraint(model_name="event", constraint=_new_constraint()),
            ],
        ),
    ]
