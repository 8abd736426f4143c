"""Tracking endpoints under load: wrk against gunicorn (2 sync workers) on loopback.

    .venv/bin/python bench/tracking.py            (make bench runs every bench/*.py)

1. Prepares a campaign with BENCH_DELIVERIES deliveries and 5 links in its own database
   (BENCH_DATABASE_URL, created and migrated if missing), and a wrk Lua script cycling through
   valid open-pixel and click URLs (half each).
2. Starts gunicorn with deploy/gunicorn.conf.py (2 sync workers, DEBUG=False, access log to a
   file) and a flusher process doing what the Celery beat task does (buffer.flush() every
   TRACKING_FLUSH_SECONDS).
3. Runs wrk for BENCH_SECONDS against each of, in interleaved rounds of BENCH_ROUND_SECONDS
   (other processes' load on this shared machine then falls on all three alike):
   - a trivial view that only answers a GIF (/t/ping.gif): the baseline;
   - the tracking endpoints with the flusher stopped: the web tier on its own, as when the
     workers run elsewhere (the buffer holds the hits, drained after the round);
   - the tracking endpoints with the flusher writing on the same two cores meanwhile; this
     rate counts the time the flusher then takes to write what it had not yet written.
4. Counts the events persisted against the requests gunicorn answered (its access log: exact,
   unlike wrk's count, which misses responses in flight when it stops), and the CPU the
   ingestion took per event (the flusher and its PostgreSQL backend).
Prints one JSON line.

BENCH_WEBHOOK=1: the same with a webhook endpoint subscribed to human opens and clicks, so the
flusher also writes their outbox rows (webhooks.emit: one INSERT ... SELECT per flush); none
is posted (no dispatcher runs): this measures what emission costs the tracking path.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECONDS = int(os.environ.get("BENCH_SECONDS", "30"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
# Enough that each recipient opens or clicks a few times in a run, as in a real campaign,
# rather than a handful of recipients hit thousands of times each.
DELIVERIES = int(os.environ.get("BENCH_DELIVERIES", "50000"))
ROUND_SECONDS = int(os.environ.get("BENCH_ROUND_SECONDS", "5"))
WEBHOOK = os.environ.get("BENCH_WEBHOOK", "") == "1"
DB_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nfm_analytics_bench"
)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6")
AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)
ENV = {
    **os.environ,
    "DATABASE_URL": DB_URL,
    "REDIS_URL": REDIS_URL,
    "TRACKING_REDIS_URL": REDIS_URL,
    "CELERY_BROKER_URL": REDIS_URL,
    "DEBUG": "False",
    "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SITE_URL": "http://127.0.0.1",
    "SECURE_SSL_REDIRECT": "False",
    "LOG_LEVEL": "WARNING",
    "DJANGO_SETTINGS_MODULE": "nofailmail.settings",
    "DB_CONN_MAX_AGE": "600",
}


def _ensure_database() -> None:
    import psycopg

    base, _, name = DB_URL.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=ENV,
        check=True,
    )


def _prepare() -> tuple[int, list[str]]:
    """The bench campaign (idempotent) and the paths wrk will request."""
    os.environ.update(ENV)
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from analytics.models import (
        CampaignBreakdown,
        CampaignSeries,
        CampaignStats,
        DeliveryActivity,
        DomainDaily,
        Event,
        Link,
        LinkStats,
        SubscriberEngagement,
    )
    from analytics.tracking import click_token, open_token
    from campaigns.models import Campaign, Delivery
    from subscribers.models import Subscriber, email_hash

    campaign, _ = Campaign.objects.get_or_create(
        name="bench: tracking", defaults={"status": Campaign.Status.FINISHED}
    )
    links = list(Link.objects.filter(campaign=campaign).order_by("index"))
    if not links:
        links = Link.objects.bulk_create(
            [
                Link(campaign=campaign, index=i, url=f"https://example.org/article-{i}")
                for i in range(5)
            ]
        )
    have = Delivery.objects.filter(campaign=campaign).count()
    if have < DELIVERIES:
        emails = [f"bench-{i}@example.net" for i in range(have, DELIVERIES)]
        Subscriber.objects.bulk_create(
            [Subscriber(email=e, status=Subscriber.Status.ACTIVE) for e in emails],
            ignore_conflicts=True,
        )
        ids = dict(Subscriber.objects.filter(email__in=emails).values_list("email", "id"))
        sent = timezone.now() - timezone.timedelta(hours=3)
        Delivery.objects.bulk_create(
            [
                Delivery(
                    campaign=campaign,
                    subscriber_id=ids[e],
                    email=e,
                    email_hash=email_hash(e),
                    domain="example.net",
                    status=Delivery.Status.SENT,
                    sent_at=sent,
                    message_id=f"<bench-{e}>",
                )
                for e in emails
            ]
        )
    # Every run starts from the same state: no events or rollups of earlier runs, and no dead
    # rows of them left for this run's inserts and upserts to wade through.
    Event.objects.filter(campaign_id=campaign.pk).delete()
    DeliveryActivity.objects.filter(campaign_id=campaign.pk).delete()
    SubscriberEngagement.objects.filter(subscriber__email__startswith="bench-").delete()
    for model in (CampaignStats, CampaignSeries, CampaignBreakdown, LinkStats):
        model.objects.filter(campaign_id=campaign.pk).delete()
    DomainDaily.objects.all().delete()
    from webhooks.emit import wanted_changed
    from webhooks.models import WebhookEndpoint, WebhookMessage

    WebhookMessage.objects.all().delete()
    WebhookEndpoint.objects.all().delete()
    if WEBHOOK:
        WebhookEndpoint.objects.create(
            url="https://hooks.example.net/in", event_types=["open.human", "click.human"]
        )
    wanted_changed()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    delivery_ids = list(
        Delivery.objects.filter(campaign=campaign).order_by("id").values_list("id", flat=True)
    )[:DELIVERIES]
    paths = []
    for n, d in enumerate(delivery_ids):
        paths.append("/t/o/" + open_token(d))
        paths.append("/t/c/" + click_token(d, links[n % len(links)].pk))
    return campaign.pk, paths


LUA = """
local paths = {%(paths)s}
local n = #paths
local i = 0
local headers = {["User-Agent"] = "%(agent)s"}
function setup(thread) end
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% n) + 1], headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,' ..
    '"p99_us":%%d,"socket_errors":%%d,"bad_status":%%d}\\n', summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wrk(url: str, script: Path, seconds: int) -> dict:
    out = subprocess.run(
        [
            "wrk",
            f"-t{THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(re.search(r"WRKJSON (\{.*\})", out).group(1))


def _summary(rounds: list[dict]) -> dict:
    """Rounds added up: exact totals and rate; p50 / p99 are the request-weighted means of
    the rounds' percentiles (wrk cannot merge histograms), plus the worst round's p99."""
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["duration_us"] for r in rounds) / 1e6

    def weighted(key):
        return sum(r[key] * r["requests"] for r in rounds) / max(requests, 1) / 1000

    return {
        "requests": requests,
        "rps": round(requests / seconds, 1),
        "p50_ms": round(weighted("p50_us"), 2),
        "p99_ms": round(weighted("p99_us"), 2),
        "p99_worst_round_ms": round(max(r["p99_us"] for r in rounds) / 1000, 2),
        "socket_errors": sum(r["socket_errors"] for r in rounds),
        "bad_status": sum(r["bad_status"] for r in rounds),
    }


def _answered(log: Path, prefix: str) -> int:
    pattern = re.compile(rf'"GET {re.escape(prefix)}\S* HTTP/1\.1" (200|302) ')
    return sum(1 for line in log.open() if pattern.search(line))


FLUSHER = """
import os, signal, sys, time, django
django.setup()
from analytics.buffer import flush
from django.conf import settings
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT pg_backend_pid()")
    open(sys.argv[1], "w").write(str(cursor.fetchone()[0]))
# SIGUSR1: flush now rather than at the end of the pause (the bench times the drains).
woken = False
def wake(*_):
    global woken
    woken = True
signal.signal(signal.SIGUSR1, wake)
while True:
    flush()
    woken = False
    for _ in range(int(settings.TRACKING_FLUSH_SECONDS / 0.05)):
        if woken:
            break
        time.sleep(0.05)
"""


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (the database runs on this machine too)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    _ensure_database()
    campaign_id, paths = _prepare()
    from analytics import buffer
    from analytics.models import Event

    r = buffer.client()
    r.delete(buffer.BUFFER_KEY, buffer.PROCESSING_KEY, buffer.LOCK_KEY)

    tmp = Path(tempfile.mkdtemp(prefix="nfm-bench-tracking-"))
    access_log = tmp / "access.log"
    port = _free_port()
    web_env = {
        **ENV,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_MAX_REQUESTS": "0",
        "GUNICORN_ACCESSLOG": str(access_log),
    }
    web_err = (tmp / "web.err").open("w")
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"],
        cwd=ROOT,
        env=web_env,
        stdout=subprocess.DEVNULL,
        stderr=web_err,
        start_new_session=True,
    )
    backend_file = tmp / "flusher-backend.pid"
    flusher = subprocess.Popen(
        [sys.executable, "-c", FLUSHER, str(backend_file)],
        cwd=ROOT,
        env=ENV,
        start_new_session=True,
    )

    def drain() -> None:
        """Until the buffer is empty and no flush is half done."""
        started = time.monotonic()
        os.kill(flusher.pid, signal.SIGUSR1)
        while (buffer.pending() or r.exists(buffer.LOCK_KEY)) and time.monotonic() - started < 300:
            time.sleep(0.02)

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                if backend_file.exists():
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or web.poll() is not None:
                raise RuntimeError((tmp / "web.err").read_text()[-2000:])
            time.sleep(0.2)
        backend = int(backend_file.read_text())
        base = f"http://127.0.0.1:{port}"
        plain = tmp / "plain.lua"
        plain.write_text(LUA % {"paths": '"/t/ping.gif"', "agent": AGENT})
        mixed = tmp / "mixed.lua"
        mixed.write_text(LUA % {"paths": ",".join(f'"{p}"' for p in paths), "agent": AGENT})
        # Interleaved rounds, so that load from other processes on this shared machine falls
        # on every kind alike rather than on whichever ran last:
        # - the trivial view;
        # - the tracking endpoints with the flusher stopped (SIGSTOP): the web tier alone, as
        #   when the workers run on other machines; the buffer holds the hits meanwhile;
        # - the tracking endpoints with the flusher writing on the same two cores.
        # Each tracking round is followed by a drain of the buffer.
        plain_rounds, web_rounds, shared_rounds = [], [], []

        def ingest_cpu() -> float:
            return _cpu_seconds(flusher.pid) + _cpu_seconds(backend)

        # Ingestion's CPU per event and pace: alone (draining what a web-tier round buffered)
        # and while sharing the cores with the load.
        alone = {"cpu": 0.0, "seconds": 0.0, "events": 0}
        shared_cpu, shared_events = 0.0, 0
        for _ in range(max(SECONDS // ROUND_SECONDS, 1)):
            plain_rounds.append(_wrk(base, plain, ROUND_SECONDS))
            os.kill(flusher.pid, signal.SIGSTOP)
            web_rounds.append(_wrk(base, mixed, ROUND_SECONDS))
            backlog, cpu_before, started = buffer.pending(), ingest_cpu(), time.monotonic()
            os.kill(flusher.pid, signal.SIGCONT)
            drain()
            alone["seconds"] += time.monotonic() - started
            alone["cpu"] += ingest_cpu() - cpu_before
            alone["events"] += backlog
            cpu_before = ingest_cpu()
            shared_rounds.append(_wrk(base, mixed, ROUND_SECONDS))
            # What the flusher had not written when the round ended counts against the round:
            # its rate is over the load and the time to finish ingesting it.
            started = time.monotonic()
            drain()
            shared_rounds[-1]["duration_us"] += int((time.monotonic() - started) * 1e6)
            shared_cpu += ingest_cpu() - cpu_before
            shared_events += shared_rounds[-1]["requests"]
        baseline = _summary(plain_rounds)
        web_tier, shared = _summary(web_rounds), _summary(shared_rounds)
    finally:
        for process in (web, flusher):
            os.kill(process.pid, signal.SIGCONT)
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        web_err.close()
    answered = _answered(access_log, "/t/o/") + _answered(access_log, "/t/c/")
    persisted = Event.objects.filter(campaign_id=campaign_id).count()
    from webhooks.models import WebhookMessage

    webhook_messages = WebhookMessage.objects.count()
    print(
        json.dumps(
            {
                "bench": "tracking",
                "seconds_each": SECONDS,
                "rounds_of_seconds": ROUND_SECONDS,
                "connections": CONNECTIONS,
                "gunicorn_workers": 2,
                "trivial_gif_view": baseline,
                "tracking": web_tier,
                "ratio_to_trivial": round(web_tier["rps"] / baseline["rps"], 3),
                "tracking_with_flusher_on_same_cores": shared,
                "ratio_to_trivial_with_flusher_on_same_cores": round(
                    shared["rps"] / baseline["rps"], 3
                ),
                "ingest_alone": {
                    "events_per_second": round(alone["events"] / max(alone["seconds"], 1e-9)),
                    "cpu_us_per_event": round(alone["cpu"] / max(alone["events"], 1) * 1e6),
                },
                "ingest_sharing_the_cores_cpu_us_per_event": round(
                    shared_cpu / max(shared_events, 1) * 1e6
                ),
                "requests_answered": answered,
                "events_persisted": persisted,
                "persisted_equals_answered": persisted == answered,
                "webhook_endpoint_subscribed": WEBHOOK,
                "webhook_messages_written": webhook_messages,
                "targets": {"rps": 2000, "p99_ms": 50, "ratio_to_trivial": 0.7},
                "note": "shared 2-core machine; ingest CPU = flusher process + its PostgreSQL "
                "backend, with the load running",
            }
        )
    )


if __name__ == "__main__":
    main()
