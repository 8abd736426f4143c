"""Count a 3-condition segment over 1,000,000 subscribers in 3 topics, 20 times.

topic AND custom attribute AND created in the last 90 days; prints one JSON line with the count
latency p50 / p95. Needs DATABASE_URL (PostgreSQL); it replaces the subscribers of that database.
"""

import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nofailmail.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
RUNS = 20


def populate() -> None:
    from subscribers.models import CustomField, Topic

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE subscribers_subscriber, subscribers_subscription,"
            " subscribers_consentrecord, subscribers_importrejection, subscribers_importjob"
            " CASCADE"
        )
        CustomField.objects.update_or_create(
            key="plan",
            defaults={"label": "Plan", "type": "choice", "choices": ["free", "pro", "team"]},
        )
        topics = [
            Topic.objects.get_or_create(slug=slug, defaults={"name": slug})[0].pk
            for slug in ("weekly", "product", "events")
        ]
        # Set-based: a million subscribers, joined over the last year, with a plan attribute.
        cursor.execute(
            """
            INSERT INTO subscribers_subscriber (email, first_name, last_name, attributes, status,
                source, source_detail, language, timezone, created_at, updated_at)
            SELECT 'seg' || g || '@example' || (g %% 100) || '.com', 'First', 'Last',
                   jsonb_build_object('plan', (ARRAY['free','pro','team'])[1 + g %% 3],
                                      'score', g %% 1000),
                   CASE WHEN g %% 10 = 0 THEN 'unsubscribed' ELSE 'active' END,
                   'import', '', 'en', '', now() - (g %% 365) * interval '1 day', now()
            FROM generate_series(1, %s) g
            """,
            [ROWS],
        )
        # Each subscriber in 1 to 3 topics, independently of the plan and the join date.
        for n, topic in enumerate(topics):
            cursor.execute(
                """
                INSERT INTO subscribers_subscription
                    (subscriber_id, topic_id, status, created_at, updated_at)
                SELECT id, %s, 'active', now(), now() FROM subscribers_subscriber
                WHERE abs(hashtext(email)) %% 3 <= %s
                """,
                [topic, n],
            )
        cursor.execute("VACUUM ANALYZE subscribers_subscriber")
        cursor.execute("VACUUM ANALYZE subscribers_subscription")


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("bench/segment.py needs DATABASE_URL pointing at PostgreSQL")
    call_command("migrate", verbosity=0)
    from subscribers.models import Segment, Subscriber
    from subscribers.segments import segment_queryset

    present = Subscriber.objects.filter(email=f"seg{ROWS}@example{ROWS % 100}.com").exists()
    if not present or Subscriber.objects.count() != ROWS or os.environ.get("BENCH_REBUILD"):
        populate()
    segment = Segment(
        name="bench",
        rules={
            "match": "all",
            "conditions": [
                {"field": "topic", "op": "in", "value": "product"},
                {"field": "attr.plan", "op": "eq", "value": "pro"},
                {"field": "created_at", "op": "within_days", "value": 90},
            ],
        },
    )
    timings, count = [], 0
    for _ in range(RUNS):
        started = time.perf_counter()
        count = segment_queryset(segment).count()  # compiled afresh each time, as in the app
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    print(
        json.dumps(
            {
                "bench": "segment",
                "subscribers": ROWS,
                "matching": count,
                "runs": RUNS,
                "p50_ms": round(statistics.median(timings), 1),
                "p95_ms": round(timings[int(0.95 * RUNS) - 1], 1),
                "max_ms": round(timings[-1], 1),
                "target_p95_ms": 300,
            }
        )
    )


if __name__ == "__main__":
    main()
