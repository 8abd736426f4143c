"""Bounce mailbox processing: N delivery status notifications (Postfix's shape, each to its
delivery's VERP address) in a private Dovecot mailbox, read over IMAP and filed by the beat
task's code (parse, ingest: events, rollups, suppressions), then moved to the done folder.

    BENCH_DATABASE_URL=postgres://... .venv/bin/python bench/bounces.py [--dsns 2000]

Prints ONE JSON line: DSNs per second for the whole poll (IMAP fetch, parse, ingest, move),
and for parsing alone. Needs Debian's dovecot-imapd (skipped with a note otherwise).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nofailmail.settings")
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nfm_bounce_bench"
)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsns", type=int, default=2000)
    args = parser.parse_args()
    if not os.path.exists("/usr/sbin/dovecot"):
        print(json.dumps({"skipped": "dovecot-imapd is not installed"}))
        return
    _ensure_database()
    call_command("migrate", verbosity=0)

    from analytics.bounce_mail import parse, verp_address
    from analytics.bounce_mailbox import bounce_mailbox_poll
    from analytics.models import Event
    from campaigns.models import Campaign, Delivery
    from subscribers.models import Subscriber, Suppression, email_hash
    from tests.analytics.test_bounce_mailbox import DSN, crlf
    from tests.support.dovecot import Dovecot

    run = int(time.time())
    campaign = Campaign.objects.create(name=f"Bounce bench {run}", status="finished")
    subscribers = Subscriber.objects.bulk_create(
        [Subscriber(email=f"b{run}.{i}@example.org", status="active") for i in range(args.dsns)]
    )
    deliveries = Delivery.objects.bulk_create(
        [
            Delivery(
                campaign=campaign,
                subscriber=s,
                email=s.email,
                email_hash=email_hash(s.email),
                domain="example.org",
                status="sent",
                message_id=f"<bench.{run}.{s.pk}@sender.example>",
            )
            for s in subscribers
        ]
    )
    raws = [
        crlf(
            DSN.format(
                verp=verp_address(d.pk, "bounces.sender.example"),
                rcpt=d.email,
                action="failed",
                status="5.1.1",
                diagnostic="550 5.1.1 Recipient address rejected: User unknown",
                message_id=d.message_id,
            )
        )
        for d in deliveries
    ]
    started = time.perf_counter()
    for n, raw in enumerate(raws):
        parse(raw, uid=f"bench:{n}")
    parse_seconds = time.perf_counter() - started

    dovecot = Dovecot().start()
    try:
        imap = dovecot.imap()
        for raw in raws:
            imap.append("INBOX", None, None, raw)
        imap.logout()
        settings.BOUNCE_IMAP_URL = dovecot.url
        events_before = Event.objects.filter(campaign_id=campaign.pk).count()
        started = time.perf_counter()
        if os.environ.get("BENCH_PROFILE"):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        result = bounce_mailbox_poll()
        if os.environ.get("BENCH_PROFILE"):
            profiler.disable()
            profiler.dump_stats("/tmp/bounces.prof")
        poll_seconds = time.perf_counter() - started
        filed = Event.objects.filter(campaign_id=campaign.pk).count() - events_before
        left = dovecot.count("INBOX")
    finally:
        dovecot.stop()
    print(
        json.dumps(
            {
                "dsns": args.dsns,
                "read": result.read,
                "events_filed": filed,
                "left_in_inbox": left,
                "suppressed": Suppression.objects.filter(
                    email_hash__in=[email_hash(d.email) for d in deliveries]
                ).count(),
                "poll_seconds": round(poll_seconds, 2),
                "dsn_per_s": round(args.dsns / poll_seconds, 1),
                "parse_only_per_s": round(args.dsns / parse_seconds, 1),
                "target_dsn_per_s": 200,
                "load_average": os.getloadavg(),
            }
        )
    )


def _ensure_database() -> None:
    import psycopg
    from django.db import connection

    name = connection.settings_dict["NAME"]
    params = {k: v for k, v in connection.get_connection_params().items() if k != "dbname"}
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    main()
