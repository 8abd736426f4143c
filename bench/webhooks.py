"""Outgoing webhook dispatch: how many signed deliveries a second reach a loopback receiver.

    .venv/bin/python bench/webhooks.py            (make bench runs every bench/*.py)

1. In its own database (BENCH_DATABASE_URL, created and migrated if missing): one endpoint
   and BENCH_MESSAGES outbox rows written by one INSERT ... SELECT (what emission writes).
2. A receiver in its own process (asyncio HTTP/1.1 with keep-alive on loopback) checks every
   POST's signature with the standardwebhooks library, as a customer's endpoint would.
3. BENCH_DISPATCHERS processes run the dispatcher's loop (webhooks.dispatch.dispatch_due:
   claim with SKIP LOCKED, post over the pooled client in parallel, record each try) until
   every message is delivered.
Prints one JSON line: deliveries/s (target 500), latency of the POSTs, verified count.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "20000"))
DISPATCHERS = int(os.environ.get("BENCH_DISPATCHERS", "1"))
CONCURRENCY = os.environ.get("BENCH_WEBHOOK_CONCURRENCY", "16")
DB_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/nfm_webhooks_bench"
)
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6")
ENV = {
    **os.environ,
    "DATABASE_URL": DB_URL,
    "REDIS_URL": REDIS_URL,
    "CELERY_BROKER_URL": REDIS_URL,
    "DEBUG": "False",
    "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "127.0.0.1",
    "SECURE_SSL_REDIRECT": "False",
    "LOG_LEVEL": "WARNING",
    "DJANGO_SETTINGS_MODULE": "nofailmail.settings",
    "WEBHOOK_ALLOW_HTTP_LOOPBACK": "True",
    "WEBHOOK_CONCURRENCY": CONCURRENCY,
    "DB_CONN_MAX_AGE": "600",
}

RECEIVER = r"""
import asyncio, json, signal, sys
from standardwebhooks.webhooks import Webhook
secret, port_file, stats_file = sys.argv[1:4]
hook = Webhook(secret)
stats = {"received": 0, "verified": 0}
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"

async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            headers = {}
            for line in head.split(b"\r\n")[1:]:
                if b":" in line:
                    k, _, v = line.partition(b":")
                    headers[k.strip().lower().decode()] = v.strip().decode()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            stats["received"] += 1
            try:
                hook.verify(body, headers)
                stats["verified"] += 1
            except Exception:
                pass
            writer.write(ANSWER)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=512)
    open(port_file, "w").write(str(server.sockets[0].getsockname()[1]))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    open(stats_file, "w").write(json.dumps(stats))

asyncio.run(main())
"""

DISPATCHER = """
import django
django.setup()
from webhooks.dispatch import dispatch_due
while True:
    done, more = dispatch_due(time_budget=600)
    if not more:
        break
"""


def _ensure_database() -> None:
    import psycopg

    base, _, name = DB_URL.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=ENV,
        check=True,
    )


def _prepare(url: str):
    from django.db import connection

    from webhooks.models import WebhookEndpoint

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE webhooks_webhookattempt, webhooks_webhookmessage, webhooks_webhookendpoint"
        )
    endpoint = WebhookEndpoint.objects.create(url=url, event_types=["delivery.sent"])
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO webhooks_webhookmessage (endpoint_id, msg_id, event_type, payload) "
            "SELECT %s, 'msg_' || md5(i::text), 'delivery.sent', jsonb_build_object("
            "'type', 'delivery.sent', 'timestamp', now(), 'data', jsonb_build_object("
            "'delivery_id', i, 'campaign_id', 1, 'email', 'reader' || i || '@example.org', "
            "'message_id', '<d' || i || '.c1@sender.example>')) "
            "FROM generate_series(1, %s) AS i",
            [endpoint.pk, MESSAGES],
        )
        cursor.execute("VACUUM ANALYZE webhooks_webhookmessage")
    return endpoint


def main() -> None:
    _ensure_database()
    os.environ.update(ENV)
    import django

    django.setup()
    from django.db.models import Avg

    from webhooks.models import WebhookAttempt, WebhookEndpoint, WebhookMessage

    tmp = Path(tempfile.mkdtemp(prefix="nfm-bench-webhooks-"))
    # The secret is only known once the endpoint exists: make it first with a placeholder URL.
    endpoint = _prepare("http://127.0.0.1:9/")
    port_file, stats_file = tmp / "port", tmp / "stats.json"
    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, endpoint.secret, str(port_file), str(stats_file)],
        start_new_session=True,
    )
    dispatchers: list[subprocess.Popen] = []
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or receiver.poll() is not None:
                raise RuntimeError("the receiver did not start")
            time.sleep(0.05)
        port = int(port_file.read_text())
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=f"http://127.0.0.1:{port}/in")
        started = time.monotonic()
        dispatchers = [
            subprocess.Popen([sys.executable, "-c", DISPATCHER], cwd=ROOT, env=ENV)
            for _ in range(DISPATCHERS)
        ]
        for process in dispatchers:
            process.wait(timeout=3600)
        seconds = time.monotonic() - started
    finally:
        for process in dispatchers:
            if process.poll() is None:
                process.kill()
        os.killpg(receiver.pid, signal.SIGTERM)
        receiver.wait(timeout=30)
    stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    delivered = WebhookMessage.objects.filter(status="delivered").count()
    durations = sorted(WebhookAttempt.objects.values_list("duration_ms", flat=True))
    print(
        json.dumps(
            {
                "bench": "webhooks",
                "messages": MESSAGES,
                "dispatcher_processes": DISPATCHERS,
                "parallel_posts_per_dispatcher": int(CONCURRENCY),
                "seconds": round(seconds, 2),
                "delivered": delivered,
                "deliveries_per_second": round(delivered / seconds, 1),
                "post_ms_p50": durations[len(durations) // 2] if durations else None,
                "post_ms_p99": durations[int(len(durations) * 0.99)] if durations else None,
                "post_ms_mean": round(
                    WebhookAttempt.objects.aggregate(m=Avg("duration_ms"))["m"] or 0, 2
                ),
                "received": stats.get("received"),
                "verified_by_standardwebhooks": stats.get("verified"),
                "attempts": len(durations),
                "target_deliveries_per_second": 500,
                "note": "shared 2-core machine; receiver, dispatcher and PostgreSQL on it",
            }
        )
    )


if __name__ == "__main__":
    main()
