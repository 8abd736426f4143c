"""Tracking endpoints under load: wrk against gunicorn (2 sync workers) on loopback.

    .venv/bin/python bench/tracking.py            (make bench runs every bench/*.py)

1. Prepares a campaign with BENCH_DELIVERIES deliveries and 5 links in its own database
   (BENCH_DATABASE_URL, created and migrated if missing), and a wrk Lua script cycling through
   valid open-pixel and click URLs (half each).
2. Starts gunicorn with deploy/gunicorn.conf.py (2 sync workers, DEBUG=False, access log to a
   file) and a flusher process doing what the Celery beat task does (buffer.flush() every
   TRACKING_FLUSH_SECONDS) while the load runs, as in production.
3. Runs wrk for BENCH_SECONDS in total against the tracking endpoints and as long against a
   trivial view that only answers a GIF (/t/ping.gif), in alternating rounds of
   BENCH_ROUND_SECONDS (other agents' load then falls on both alike); waits for the buffer to
   drain; counts the events
   persisted against the requests gunicorn answered (its access log: exact, unlike wrk's count
   which misses responses in flight when it stops) and wrk's completed requests.
Prints one JSON line.
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
DELIVERIES = int(os.environ.get("BENCH_DELIVERIES", "2000"))
# 1: the flusher writes while the load runs (as in production); 0: it starts after the load,
# which separates the request path's cost from the bulk writer's CPU on a 2-core machine.
ROUND_SECONDS = int(os.environ.get("BENCH_ROUND_SECONDS", "5"))
FLUSH_DURING_LOAD = os.environ.get("BENCH_FLUSH_DURING_LOAD", "1") == "1"
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
    from django.utils import timezone

    from analytics.models import Event, Link
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
    Event.objects.filter(campaign_id=campaign.pk).delete()
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
import os, time, django
django.setup()
from analytics.buffer import flush
from django.conf import settings
while True:
    flush()
    time.sleep(settings.TRACKING_FLUSH_SECONDS)
"""


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

    def start_flusher():
        return subprocess.Popen(
            [sys.executable, "-c", FLUSHER], cwd=ROOT, env=ENV, start_new_session=True
        )

    flusher = start_flusher() if FLUSH_DURING_LOAD else None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or web.poll() is not None:
                    raise RuntimeError((tmp / "web.err").read_text()[-2000:]) from None
                time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        plain = tmp / "plain.lua"
        plain.write_text(LUA % {"paths": '"/t/ping.gif"', "agent": AGENT})
        mixed = tmp / "mixed.lua"
        mixed.write_text(LUA % {"paths": ",".join(f'"{p}"' for p in paths), "agent": AGENT})
        # Interleaved rounds, so that load from other processes on this shared machine falls
        # on both sides alike rather than on whichever ran second.
        plain_rounds, mixed_rounds = [], []
        for _ in range(max(SECONDS // ROUND_SECONDS, 1)):
            plain_rounds.append(_wrk(base, plain, ROUND_SECONDS))
            mixed_rounds.append(_wrk(base, mixed, ROUND_SECONDS))
        baseline, tracking = _summary(plain_rounds), _summary(mixed_rounds)
        started = time.monotonic()
        if flusher is None:
            flusher = start_flusher()
        while buffer.pending() and time.monotonic() - started < 300:
            time.sleep(0.5)
        # The flusher may be mid-batch: wait for its lock too.
        while r.exists(buffer.LOCK_KEY) and time.monotonic() - started < 300:
            time.sleep(0.2)
        drain_seconds = round(time.monotonic() - started, 1)
    finally:
        for process in (web, flusher):
            if process is None:
                continue
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        web_err.close()
    answered = _answered(access_log, "/t/o/") + _answered(access_log, "/t/c/")
    persisted = Event.objects.filter(campaign_id=campaign_id).count()
    print(
        json.dumps(
            {
                "bench": "tracking",
                "seconds": SECONDS,
                "rounds_of_seconds": ROUND_SECONDS,
                "connections": CONNECTIONS,
                "gunicorn_workers": 2,
                "tracking": tracking,
                "trivial_gif_view": baseline,
                "ratio_to_trivial": round(tracking["rps"] / baseline["rps"], 3),
                "requests_answered": answered,
                "events_persisted": persisted,
                "persisted_equals_answered": persisted == answered,
                "buffer_drain_seconds_after_load": drain_seconds,
                "targets": {"rps": 2000, "p99_ms": 50, "ratio_to_trivial": 0.7},
                "flusher_during_load": FLUSH_DURING_LOAD,
                "note": "shared 2-core machine, other agents running at the same time",
            }
        )
    )


if __name__ == "__main__":
    main()
