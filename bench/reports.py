"""Report pages at scale: 1,000,000 deliveries and 5,000,000 events, each page timed.

    .venv/bin/python bench/reports.py

Fills its own database (BENCH_REPORTS_DATABASE_URL, created and migrated if missing; filled
once, reused by later runs): 100,000 subscribers, 10 finished campaigns of 100,000 deliveries
each, about 5,400,000 events (delivered, human / proxy opens, human / scanner clicks, bounces
and complaints) written set-based in SQL, and the rollups built from them in SQL as the
ingestion path would have maintained them. Then requests every analytics page in-process
(Django test client, logged in) BENCH_REPEAT times and prints the median and worst time of
each, in one JSON line. Target: at most 300 ms per page.
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
    "BENCH_REPORTS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nfm_analytics_reports"
)
SUBSCRIBERS = 100_000
CAMPAIGNS = 10
EVENTS_PER_DELIVERY = 5
REPEAT = int(os.environ.get("BENCH_REPEAT", "7"))
ENV = {
    "DATABASE_URL": DB_URL,
    "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6"),
    "DEBUG": "False",
    "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "testserver",
    "SECURE_SSL_REDIRECT": "False",
    "SESSION_COOKIE_SECURE": "False",
    "CSRF_COOKIE_SECURE": "False",
    "LOG_LEVEL": "WARNING",
    # DEBUG=False serves hashed static names from a manifest: collected once, here.
    "STATIC_ROOT": "/tmp/nfm-bench-reports-static",
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


FILL_SQL = [
    # Subscribers who joined long ago, so that the sunset preview has a whole list to judge.
    "UPDATE subscribers_subscriber SET created_at = now() - interval '400 days'",
    # 1,000,000 deliveries: every subscriber in every campaign, sent over the last 30 days.
    """
    INSERT INTO campaigns_delivery (campaign_id, subscriber_id, email, email_hash, domain,
        status, claim_token, attempts, sent_at, message_id, error, created_at)
    SELECT c.id, s.id, s.email, encode(sha256(convert_to(s.email, 'UTF8')), 'hex'),
        split_part(s.email, '@', 2), 'sent', '', 1, c.started_at + (s.id % 3600) * interval '1s',
        '<b' || s.id || '.' || c.id || '@bench.example>', '', now()
    FROM campaigns_campaign c CROSS JOIN subscribers_subscriber s
    WHERE c.name LIKE 'bench report %'
    """,
    # 5,000,000 events: five per delivery.
    """
    INSERT INTO analytics_event (uid, kind, occurred_at, received_at, delivery_id, campaign_id,
        subscriber_id, link_id, email_hash, classification, reason, bounce_type, ip, user_agent,
        method, prefetch, esp, message_id, url)
    SELECT 'bench:' || d.id || ':' || k.n,
        CASE k.n WHEN 0 THEN (CASE WHEN d.id % 97 = 0 THEN 'bounced'
                                   WHEN d.id % 1500 = 0 THEN 'complained' ELSE 'delivered' END)
                 WHEN 1 THEN 'opened' WHEN 2 THEN 'opened' WHEN 3 THEN 'clicked'
                 ELSE 'opened' END,
        d.sent_at + (k.n * 3600 + d.id % 3000) * interval '1s', now(), d.id, d.campaign_id,
        d.subscriber_id,
        CASE WHEN k.n = 3 THEN (SELECT min(id) FROM analytics_link l
                                WHERE l.campaign_id = d.campaign_id) + d.id % 5 END,
        d.email_hash,
        CASE k.n WHEN 0 THEN '' WHEN 2 THEN 'proxy'
                 WHEN 3 THEN (CASE WHEN d.id % 4 = 0 THEN 'scanner' ELSE 'human' END)
                 ELSE 'human' END,
        '', CASE WHEN k.n = 0 AND d.id % 97 = 0 THEN 'hard' ELSE '' END,
        CASE WHEN k.n = 2 THEN '17.58.1.1'::inet ELSE '81.2.69.160'::inet END,
        'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile',
        'GET', false, CASE WHEN k.n = 0 THEN 'mailgun' ELSE '' END, d.message_id, ''
    FROM campaigns_delivery d CROSS JOIN generate_series(0, 5) AS k(n)
    WHERE d.campaign_id IN (SELECT id FROM campaigns_campaign WHERE name LIKE 'bench report %')
      AND NOT (k.n = 5 AND d.id % 2 = 0)
      AND NOT (k.n IN (1, 2, 3) AND d.id % 97 = 0)
    """,
]

ROLLUP_SQL = [
    """
    INSERT INTO analytics_deliveryactivity (delivery_id, campaign_id, subscriber_id, esp_status,
        delivered_at, deferred_count, bounced_at, bounce_type, complained_at, unsubscribed_at,
        opens, human_opens, clicks, human_clicks, first_open_at, first_human_open_at,
        first_click_at, first_human_click_at, last_click_at, last_link_id, human_link_ids)
    SELECT delivery_id, min(campaign_id), min(subscriber_id), '',
        min(occurred_at) FILTER (WHERE kind = 'delivered'), 0,
        min(occurred_at) FILTER (WHERE kind = 'bounced'),
        coalesce(min(bounce_type) FILTER (WHERE kind = 'bounced'), ''),
        min(occurred_at) FILTER (WHERE kind = 'complained'), NULL,
        count(*) FILTER (WHERE kind = 'opened'),
        count(*) FILTER (WHERE kind = 'opened' AND classification = 'human'),
        count(*) FILTER (WHERE kind = 'clicked'),
        count(*) FILTER (WHERE kind = 'clicked' AND classification = 'human'),
        min(occurred_at) FILTER (WHERE kind = 'opened'),
        min(occurred_at) FILTER (WHERE kind = 'opened' AND classification = 'human'),
        min(occurred_at) FILTER (WHERE kind = 'clicked'),
        min(occurred_at) FILTER (WHERE kind = 'clicked' AND classification = 'human'),
        max(occurred_at) FILTER (WHERE kind = 'clicked'), max(link_id),
        coalesce(jsonb_agg(DISTINCT link_id) FILTER (
            WHERE kind = 'clicked' AND classification = 'human' AND link_id IS NOT NULL), '[]')
    FROM analytics_event WHERE uid LIKE 'bench:%' GROUP BY delivery_id
    """,
    """
    INSERT INTO analytics_campaignstats (campaign_id, delivered, deferred, bounced_hard,
        bounced_soft, rejected, complained, unsubscribed, opens, opens_human, opens_proxy,
        opens_scanner, unique_opens, unique_human_opens, clicks, clicks_human, clicks_scanner,
        unique_clicks, unique_human_clicks, updated_at)
    SELECT e.campaign_id,
        count(*) FILTER (WHERE kind = 'delivered'), 0,
        count(*) FILTER (WHERE kind = 'bounced'), 0, 0,
        count(*) FILTER (WHERE kind = 'complained'), 0,
        count(*) FILTER (WHERE kind = 'opened'),
        count(*) FILTER (WHERE kind = 'opened' AND classification = 'human'),
        count(*) FILTER (WHERE kind = 'opened' AND classification = 'proxy'), 0,
        (SELECT count(*) FROM analytics_deliveryactivity a
         WHERE a.campaign_id = e.campaign_id AND a.first_open_at IS NOT NULL),
        (SELECT count(*) FROM analytics_deliveryactivity a
         WHERE a.campaign_id = e.campaign_id AND a.first_human_open_at IS NOT NULL),
        count(*) FILTER (WHERE kind = 'clicked'),
        count(*) FILTER (WHERE kind = 'clicked' AND classification = 'human'),
        count(*) FILTER (WHERE kind = 'clicked' AND classification = 'scanner'),
        (SELECT count(*) FROM analytics_deliveryactivity a
         WHERE a.campaign_id = e.campaign_id AND a.first_click_at IS NOT NULL),
        (SELECT count(*) FROM analytics_deliveryactivity a
         WHERE a.campaign_id = e.campaign_id AND a.first_human_click_at IS NOT NULL),
        now()
    FROM analytics_event e WHERE uid LIKE 'bench:%' GROUP BY e.campaign_id
    """,
    """
    INSERT INTO analytics_campaignseries (campaign_id, bucket, opens, opens_human, clicks,
        clicks_human)
    SELECT campaign_id, date_trunc('hour', occurred_at),
        count(*) FILTER (WHERE kind = 'opened'),
        count(*) FILTER (WHERE kind = 'opened' AND classification = 'human'),
        count(*) FILTER (WHERE kind = 'clicked'),
        count(*) FILTER (WHERE kind = 'clicked' AND classification = 'human')
    FROM analytics_event WHERE uid LIKE 'bench:%' AND kind IN ('opened', 'clicked')
    GROUP BY 1, 2
    """,
    """
    INSERT INTO analytics_linkstats (link_id, campaign_id, clicks, clicks_human,
        unique_human_clicks)
    SELECT link_id, min(campaign_id), count(*), count(*) FILTER (WHERE classification = 'human'),
        count(DISTINCT delivery_id) FILTER (WHERE classification = 'human')
    FROM analytics_event WHERE uid LIKE 'bench:%' AND kind = 'clicked' GROUP BY link_id
    """,
    """
    INSERT INTO analytics_campaignbreakdown (campaign_id, dimension, key, delivered, bounced,
        human_opens, human_clicks)
    SELECT d.campaign_id, 'domain', d.domain, count(a.delivered_at), count(a.bounced_at),
        count(a.first_human_open_at), count(a.first_human_click_at)
    FROM campaigns_delivery d JOIN analytics_deliveryactivity a ON a.delivery_id = d.id
    GROUP BY 1, 3
    """,
    """
    INSERT INTO analytics_campaignbreakdown (campaign_id, dimension, key, delivered, bounced,
        human_opens, human_clicks)
    SELECT campaign_id, dim, key, 0, 0, count(*), 0 FROM (
        SELECT campaign_id, unnest(ARRAY['client', 'device']) AS dim,
               unnest(ARRAY['Apple Mail', 'Mobile']) AS key
        FROM analytics_deliveryactivity WHERE first_human_open_at IS NOT NULL) x
    GROUP BY 1, 2, 3
    """,
    """
    INSERT INTO analytics_domaindaily (domain, day, delivered, bounced_hard, bounced_soft,
        complained, opens_human, clicks_human, unsubscribed)
    SELECT 'bench.example', occurred_at::date,
        count(*) FILTER (WHERE kind = 'delivered'), count(*) FILTER (WHERE kind = 'bounced'), 0,
        count(*) FILTER (WHERE kind = 'complained'),
        count(*) FILTER (WHERE kind = 'opened' AND classification = 'human'),
        count(*) FILTER (WHERE kind = 'clicked' AND classification = 'human'), 0
    FROM analytics_event WHERE uid LIKE 'bench:%' GROUP BY 2
    """,
    """
    INSERT INTO analytics_subscriberengagement (subscriber_id, last_sent_at, last_human_open_at,
        last_human_click_at, human_opens, human_clicks, score)
    SELECT subscriber_id, max(first_open_at), max(first_human_open_at),
        max(first_human_click_at), sum(human_opens), sum(human_clicks), 50
    FROM analytics_deliveryactivity GROUP BY subscriber_id
    """,
    "ANALYZE",
]


def _fill(stdout) -> dict:
    from django.db import connection
    from django.utils import timezone

    from analytics.models import Event, Link
    from campaigns.models import Campaign, SendingConnection
    from subscribers.models import Subscriber

    counts = {"events": Event.objects.filter(uid__startswith="bench:").count()}
    if counts["events"] >= 5_000_000:
        return counts
    started = time.monotonic()
    if Subscriber.objects.count() < SUBSCRIBERS:
        Subscriber.objects.bulk_create(
            [
                Subscriber(
                    email=f"reader{i}@{['gmail.com', 'outlook.com', 'yahoo.com', 'web.de'][i % 4]}",
                    status=Subscriber.Status.ACTIVE,
                )
                for i in range(SUBSCRIBERS)
            ],
            batch_size=5000,
            ignore_conflicts=True,
        )
    connection_row, _ = SendingConnection.objects.get_or_create(
        name="bench", defaults={"sending_domain": "bench.example", "test_mode": True}
    )
    for n in range(CAMPAIGNS):
        campaign, created = Campaign.objects.get_or_create(
            name=f"bench report {n}",
            defaults={
                "status": Campaign.Status.FINISHED,
                "connection": connection_row,
                "started_at": timezone.now() - timezone.timedelta(days=30 - 3 * n),
            },
        )
        if created:
            Link.objects.bulk_create(
                [
                    Link(campaign=campaign, index=i, url=f"https://example.org/{n}/{i}")
                    for i in range(5)
                ]
            )
    with connection.cursor() as cursor:
        for sql in FILL_SQL + ROLLUP_SQL:
            cursor.execute(sql)
    stdout.write(f"filled in {time.monotonic() - started:.0f}s\n")
    return {"events": Event.objects.filter(uid__startswith="bench:").count()}


def main() -> None:
    os.environ.update(ENV)
    _ensure_database()
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    from analytics.models import Event
    from campaigns.models import Campaign, Delivery

    counts = _fill(sys.stderr)
    from django.core.cache import cache
    from django.utils import timezone

    # The dashboard caches its list-growth counts: start cold so "first_ms" is the real cost.
    cache.delete(f"analytics:list-growth:30:{timezone.now().date()}")
    user = get_user_model().objects.filter(username="bench").first()
    if user is None:
        user = get_user_model().objects.create_superuser("bench", password="bench-pw")
    client = Client()
    client.force_login(user)
    campaign = Campaign.objects.filter(name="bench report 9").first()
    subscriber_id = Delivery.objects.filter(campaign=campaign).values_list(
        "subscriber_id", flat=True
    )[0]
    pages = {
        "dashboard": "/analytics/",
        "campaign_report": f"/analytics/campaigns/{campaign.pk}/",
        "sending_domains": "/analytics/domains/",
        "list_hygiene": "/analytics/hygiene/",
        "subscriber_timeline": f"/analytics/subscribers/{subscriber_id}/timeline/",
    }
    # The sunset preview scans the whole list: computed on request / by the periodic task and
    # stored, then shown by the page. Timed here on its own.
    from analytics.hygiene import sunset_policy, sunset_preview_refresh

    started = time.perf_counter()
    preview = sunset_preview_refresh(policy=sunset_policy())
    preview_ms = round((time.perf_counter() - started) * 1000, 1)
    # One request first so that template loading and imports are not billed to a page.
    client.get("/analytics/domains/")
    timings = {}
    for name, url in pages.items():
        samples = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        timings[name] = {
            "median_ms": round(statistics.median(samples), 1),
            "first_ms": round(samples[0], 1),
            "worst_ms": round(max(samples), 1),
        }
    print(
        json.dumps(
            {
                "bench": "reports",
                "deliveries": Delivery.objects.count(),
                "events": counts["events"] or Event.objects.count(),
                "pages": timings,
                "sunset_preview_refresh_ms": preview_ms,
                "sunset_preview_counts": [preview["reengage"], preview["unsubscribe"]],
                "target_ms": 300,
                "note": "in-process Django test client; shared 2-core machine, other agents "
                "running at the same time",
            }
        )
    )


if __name__ == "__main__":
    main()
