"""ESP webhooks: a burst of Postmark delivery calls through the real endpoint, written at once
(no Redis: one ingestion transaction a call, as before the buffer) or buffered (one RPUSH a
call, then the flusher's batches).

    BENCH_DATABASE_URL=postgres://.../nfm_x REDIS_URL=redis://127.0.0.1:6379/N \\
        .venv/bin/python bench/esp_webhooks.py

Each call goes through Django's test client in this process (the URL routing, anymail's basic
auth and parsing, TrackingGuard, the signal, the buffer or the ingestion), so the figures are
the application's cost, without an HTTP server's. Rounds alternate the two modes (the load of
other processes on a shared machine then falls on both alike); each round starts from no
events. Prints one JSON line: events/s end to end (calls answered and events written), the
request path alone, and the ingestion transactions per 1,000 calls.
"""

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CALLS = int(os.environ.get("BENCH_CALLS", "2000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
DB_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nfm_webhooks_bench"
)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6")
AUTH = "bench:webhook-secret"
os.environ.update(
    DATABASE_URL=DB_URL,
    REDIS_URL=REDIS_URL,
    TRACKING_REDIS_URL=REDIS_URL,
    CELERY_BROKER_URL=REDIS_URL,
    DEBUG="False",
    SECRET_KEY="bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    ALLOWED_HOSTS="testserver",
    SECURE_SSL_REDIRECT="False",
    LOG_LEVEL="ERROR",
    DJANGO_SETTINGS_MODULE="nofailmail.settings",
)


def _ensure_database() -> None:
    import subprocess

    import psycopg

    base, _, name = DB_URL.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True
    )


def main() -> None:
    _ensure_database()
    import base64

    import django

    django.setup()
    from django.conf import settings
    from django.test import Client
    from django.test.utils import override_settings
    from django.utils import timezone

    from analytics import buffer
    from analytics.models import CampaignStats, DeliveryActivity, Event
    from campaigns.models import Campaign, Delivery
    from subscribers.models import Subscriber, email_hash

    campaign, _ = Campaign.objects.get_or_create(
        name="bench: webhooks", defaults={"status": Campaign.Status.FINISHED}
    )
    have = Delivery.objects.filter(campaign=campaign).count()
    if have < CALLS:
        emails = [f"hook-{i}@example.net" for i in range(have, CALLS)]
        Subscriber.objects.bulk_create(
            [Subscriber(email=e, status=Subscriber.Status.ACTIVE) for e in emails],
            ignore_conflicts=True,
        )
        ids = dict(Subscriber.objects.filter(email__in=emails).values_list("email", "id"))
        Delivery.objects.bulk_create(
            [
                Delivery(
                    campaign=campaign,
                    subscriber_id=ids[e],
                    email=e,
                    email_hash=email_hash(e),
                    domain="example.net",
                    status=Delivery.Status.SENT,
                    sent_at=timezone.now() - timezone.timedelta(hours=1),
                    message_id=f"<hook-{e}>",
                )
                for e in emails
            ]
        )
    deliveries = list(
        Delivery.objects.filter(campaign=campaign).order_by("id").values("message_id", "email")
    )[:CALLS]
    client = Client()
    headers = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(AUTH.encode()).decode()}

    def bodies() -> list[str]:
        at = datetime.now(UTC).isoformat()
        return [
            json.dumps(
                {
                    "RecordType": "Delivery",
                    "ServerID": 23,
                    "MessageStream": "outbound",
                    "MessageID": d["message_id"].strip("<>"),
                    "Recipient": d["email"],
                    "DeliveredAt": at,
                    "Details": "250 2.0.0 OK",
                    "Metadata": {},
                }
            )
            for d in deliveries
        ]

    def reset() -> None:
        Event.objects.filter(campaign_id=campaign.pk).delete()
        DeliveryActivity.objects.filter(campaign_id=campaign.pk).delete()
        CampaignStats.objects.filter(campaign_id=campaign.pk).delete()
        r = buffer.client()
        r.delete(buffer.FACTS_KEY, buffer.FACTS_PROCESSING_KEY)

    def run(redis_url: str | None) -> dict:
        reset()
        payloads = bodies()
        with override_settings(
            TRACKING_REDIS_URL=redis_url, ANYMAIL={**settings.ANYMAIL, "WEBHOOK_SECRET": AUTH}
        ):
            started = time.perf_counter()
            for body in payloads:
                response = client.post(
                    "/anymail/postmark/tracking/",
                    data=body,
                    content_type="application/json",
                    **headers,
                )
                assert response.status_code == 200, response.content[:200]
            answered = time.perf_counter() - started
            while buffer.flush():
                pass
            written = time.perf_counter() - started
        events = Event.objects.filter(campaign_id=campaign.pk)
        assert events.count() == CALLS, events.count()
        return {
            "answered_s": answered,
            "written_s": written,
            "transactions": events.values("received_at").distinct().count(),
        }

    results: dict[str, list[dict]] = {"sync": [], "buffered": []}
    for _ in range(ROUNDS):
        results["sync"].append(run(None))
        results["buffered"].append(run(REDIS_URL))
    reset()

    def summary(rounds: list[dict]) -> dict:
        answered = sum(r["answered_s"] for r in rounds)
        written = sum(r["written_s"] for r in rounds)
        calls = CALLS * len(rounds)
        return {
            "events_per_s": round(calls / written, 1),
            "calls_answered_per_s": round(calls / answered, 1),
            "transactions_per_1000_calls": round(
                1000 * sum(r["transactions"] for r in rounds) / calls, 1
            ),
        }

    print(
        json.dumps(
            {
                "bench": "webhooks",
                "calls": CALLS,
                "rounds": ROUNDS,
                "before_sync": summary(results["sync"]),
                "after_buffered": summary(results["buffered"]),
            }
        )
    )


if __name__ == "__main__":
    main()
