"""Signup form submissions per second through the real view stack.

Each submission goes through Django's full request handling (middleware, URL routing, the public
submit view): form token check, per-IP and per-address rate limits in Redis, field validation,
email-validator, subscriber + signup rows in PostgreSQL, and the confirmation email enqueued on
the real Redis broker (transaction.on_commit -> Celery publish). The in-process Django test
client stands in for the HTTP server, so no network or WSGI server time is counted.

Needs DATABASE_URL (PostgreSQL: the signup and subscriber tables are emptied first), REDIS_URL
and CELERY_BROKER_URL (Redis). Target: >= 300 submissions/s. The machine is shared (2 cores,
several agents), so figures vary between runs. Prints one JSON line.
"""

import json
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nofailmail.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402

SUBMISSIONS = int(os.environ.get("BENCH_SUBMISSIONS", "4000"))
PROCESSES = int(os.environ.get("BENCH_PROCESSES", "2"))
WARMUP = 50


def _client(n, count, url, token, run, queue, barrier, results) -> None:
    """One client process: warm up, wait for the others, then submit ``count`` signups."""
    from django.test import Client

    from nofailmail.celery import app as celery_app

    celery_app.conf.task_default_queue = queue
    client = Client()

    def submit(i: int) -> None:
        # Encoded like the embed script's URLSearchParams body.
        body = urlencode(
            {
                "token": token,
                "step": "0",
                "format": "json",
                "email": f"visitor{n}.{i}.{run}@example{i % 37}.com",
                "consent": "1",
                "page": "https://shop.example/blog/post?utm_source=bench",
            }
        )
        response = client.post(
            url,
            body,
            content_type="application/x-www-form-urlencoded",
            REMOTE_ADDR=f"10.{n}.{(i >> 8) & 255}.{i & 255}",
            HTTP_ORIGIN="https://shop.example",
        )
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code} {response.content[:200]!r}")

    try:
        for i in range(WARMUP):  # imports, connections, prepared caches
            submit(10**6 + i)
        barrier.wait()
        latencies = []
        cpu = time.process_time()
        start = time.perf_counter()
        for i in range(count):
            t0 = time.perf_counter()
            submit(i)
            latencies.append(time.perf_counter() - t0)
        end = time.perf_counter()
        results.put(
            {
                "start": start,
                "end": end,
                "cpu": time.process_time() - cpu,
                "latencies": latencies,
            }
        )
    except Exception as exc:
        barrier.abort()
        results.put({"error": repr(exc)})


def main() -> None:
    if connection.vendor != "postgresql":
        sys.exit("bench/signup.py needs DATABASE_URL pointing at PostgreSQL")
    if (
        not settings.CELERY_BROKER_URL.startswith("redis://")
        or "redis" not in str(settings.CACHES["default"]["BACKEND"]).lower()
    ):
        sys.exit("bench/signup.py needs CELERY_BROKER_URL and REDIS_URL pointing at Redis")
    settings.DEBUG = False  # no query log growing in memory
    settings.SIGNUP_RATE_PER_IP = 10**9  # one client process plays every visitor
    call_command("migrate", verbosity=0)

    from django.core.cache import cache

    from nofailmail.celery import app as celery_app
    from signup.models import SignupForm
    from signup.protection import form_token_make
    from subscribers.models import Topic

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE signup_signup, signup_formview, signup_signupform,"
            " subscribers_subscriber, subscribers_subscription, subscribers_consentrecord CASCADE"
        )
    topic, _ = Topic.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    form = SignupForm.objects.create(
        name="Bench",
        # One step: its submission is the last one, so the confirmation is enqueued at once (a
        # multi-step form would defer it to the last step or the beat's sweep).
        steps=[
            {
                "fields": [
                    {"kind": "email"},
                    {"kind": "consent", "required": True},
                    {"kind": "first_name"},
                ]
            },
        ],
        consent_text="Yes",
        allowed_origins="https://shop.example",
        min_fill_seconds=0,
    )
    form.topics.set([topic])
    # A queue of our own: the messages are counted, then deleted (no worker sends them).
    queue = f"bench-signup-{uuid.uuid4().hex[:8]}"
    celery_app.conf.task_default_queue = queue
    cache.clear()

    url = f"/forms/f/{form.public_id}/submit"
    token = form_token_make(form.pk)
    run = uuid.uuid4().hex[:6]
    per_process = SUBMISSIONS // PROCESSES
    # Several processes, like several web workers behind a load balancer: while one waits on
    # PostgreSQL or Redis, another runs. Each opens its own connections after the fork.
    connections.close_all()
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    results = context.Queue()
    workers = [
        context.Process(
            target=_client, args=(n, per_process, url, token, run, queue, barrier, results)
        )
        for n in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    failures = [o["error"] for o in outcomes if o.get("error")]
    if failures:
        sys.exit(f"submissions failed: {failures[:3]}")
    elapsed = max(o["end"] for o in outcomes) - min(o["start"] for o in outcomes)
    latencies = sorted(lat for o in outcomes for lat in o["latencies"])
    total = per_process * PROCESSES

    with celery_app.connection_for_write() as conn:
        enqueued = conn.default_channel.client.llen(queue)
        conn.default_channel.client.delete(queue)
    latencies.sort()
    print(
        json.dumps(
            {
                "bench": "signup",
                "submissions": total,
                "processes": PROCESSES,
                "seconds": round(elapsed, 2),
                "submissions_per_s": round(total / elapsed, 1),
                "target_per_s": 300,
                "p50_ms": round(statistics.median(latencies) * 1000, 2),
                "p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 2),
                # Python CPU per submission in the client processes (Django, our view, ORM,
                # Celery publish); PostgreSQL and Redis CPU come on top.
                "web_cpu_ms_per_submission": round(
                    sum(o["cpu"] for o in outcomes) / total * 1000, 2
                ),
                "confirmations_enqueued": enqueued - WARMUP * PROCESSES,
                "load_average_1m": round(os.getloadavg()[0], 2),
                "path": "django test client -> submit view -> postgres + redis (in-process)",
                "note": "shared 2-core machine: other agents run at the same time",
            }
        )
    )


if __name__ == "__main__":
    main()
