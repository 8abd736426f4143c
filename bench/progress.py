"""The campaign page's poll at 1,000,000 deliveries: queries and milliseconds.

    .venv/bin/python bench/progress.py

Fills its own database (BENCH_PROGRESS_DATABASE_URL, created and migrated if missing; filled
once, reused): one running campaign whose ledger holds 1,000,000 deliveries in every state
(written set-based; the ledger's trigger keeps the counters as it would in production), and
99 other campaigns of 100 deliveries. Then, in-process and logged in, requests the progress
partial and the campaign list BENCH_REPEAT times, and for comparison times the GROUP BY over
the ledger the poll used to run. Prints one JSON line: median ms and SQL statements per
request. Target: the poll costs the same at 1M deliveries as at 100 (a few counter rows).
"""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_URL = os.environ.get(
    "BENCH_PROGRESS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nfm_bench_progress"
)
DELIVERIES = 1_000_000
REPEAT = int(os.environ.get("BENCH_REPEAT", "30"))
ENV = {
    "DATABASE_URL": DB_URL,
    "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/7"),
    "DEBUG": "False",
    "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "testserver",
    "SECURE_SSL_REDIRECT": "False",
    "SESSION_COOKIE_SECURE": "False",
    "CSRF_COOKIE_SECURE": "False",
    "LOG_LEVEL": "WARNING",
    "STATIC_ROOT": "/tmp/nfm-bench-progress-static",
    "DJANGO_SETTINGS_MODULE": "nofailmail.settings",
}


def _ensure_database() -> None:
    import psycopg

    base, _, name = DB_URL.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    for command in (["migrate"], ["collectstatic"]):
        subprocess.run(
            [sys.executable, "manage.py", *command, "--noinput", "-v", "0"],
            cwd=ROOT,
            env={**os.environ, **ENV},
            check=True,
        )


def _fill() -> int:
    from django.db import connection
    from django.utils import timezone

    from campaigns.models import Campaign

    big = Campaign.objects.filter(name="bench-progress-big").first()
    if big is not None:
        return big.pk
    now = timezone.now()
    big = Campaign.objects.create(
        name="bench-progress-big",
        status=Campaign.Status.RUNNING,
        from_email="news@sender.example",
        started_at=now - timezone.timedelta(hours=1),
        total=DELIVERIES,
    )
    others = Campaign.objects.bulk_create(
        [
            Campaign(
                name=f"bench-progress-{i}",
                status=Campaign.Status.FINISHED,
                from_email="news@sender.example",
                started_at=now,
                finished_at=now,
                total=100,
            )
            for i in range(99)
        ]
    )
    with connection.cursor() as cursor:
        statement = """
            INSERT INTO campaigns_delivery (campaign_id, subscriber_id, email, email_hash, domain,
              status, claim_token, attempts, message_id, error, created_at)
            SELECT %s, NULL, 'r' || g || '@example.org', md5(g::text), 'example.org',
              (ARRAY['sent','sent','sent','sent','sent','sent','pending','failed','skipped',
                     'claimed'])[1 + g %% 10], '', 1, '', '', now()
            FROM generate_series(1, %s) AS g
        """
        cursor.execute(statement, [big.pk, DELIVERIES])
        for other in others:
            cursor.execute(statement, [other.pk, 100])
        cursor.execute("VACUUM ANALYZE campaigns_delivery")
    return big.pk


def _time(client, url: str) -> tuple[float, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, statements = [], 0
    for _ in range(REPEAT):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        statements = len(queries.captured_queries)
    return statistics.median(times), statements


def main() -> None:
    os.environ.update(ENV)
    _ensure_database()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from campaigns.models import Delivery

    campaign_id = _fill()
    user, _ = get_user_model().objects.get_or_create(
        username="bench-progress", defaults={"is_superuser": True, "is_staff": True}
    )
    client = Client()
    client.force_login(user)
    poll_ms, poll_sql = _time(client, f"/campaigns/{campaign_id}/progress/?seen=running")
    list_ms, list_sql = _time(client, "/campaigns/")
    scans = []
    for _ in range(5):
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT status, count(*) FROM campaigns_delivery WHERE campaign_id = %s "
                "GROUP BY status",
                [campaign_id],
            )
            cursor.fetchall()
        scans.append((time.perf_counter() - started) * 1000)
    print(
        json.dumps(
            {
                "bench": "campaign_progress_poll",
                "deliveries": Delivery.objects.filter(campaign_id=campaign_id).count(),
                "poll_median_ms": round(poll_ms, 2),
                "poll_sql_statements": poll_sql,
                "campaign_list_median_ms": round(list_ms, 2),
                "campaign_list_sql_statements": list_sql,
                "old_group_by_median_ms": round(statistics.median(scans), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
