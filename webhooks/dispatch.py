"""Posting the outbox: claim due messages, sign them (Standard Webhooks), post them over a
pooled HTTP client in parallel, record every try, retry with exponential back-off for a day.

At least once: a message is claimed by pushing its ``next_attempt_at`` a lease ahead (``UPDATE
... FROM (SELECT ... FOR UPDATE SKIP LOCKED)``, so two dispatchers never take the same row);
a dispatcher that dies mid-batch leaves its rows to be taken again once the lease runs out.
Receivers de-duplicate on the ``webhook-id`` header, the same on every try.
"""

import base64
import hashlib
import hmac
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper

from .emit import EVENT_PAYLOAD_SQL
from .models import WebhookEndpoint
from .services import endpoints_disabled_alert

log = logging.getLogger(__name__)

# Seconds before try n+1 after try n fails: 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h,
# 8 h, 8 h — eleven tries over about 24 hours, then the message is given up.
BACKOFF_SECONDS = [5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800]
MAX_ATTEMPTS = len(BACKOFF_SECONDS) + 1
BATCH_SIZE = 200
# A claimed batch belongs to its dispatcher for this long (longer than a batch's posts).
LEASE_SECONDS = 120
BODY_KEPT = 500
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def url_problem(url: str) -> str:
    """Why this URL may not receive webhooks ("" when it may): HTTPS only; plain HTTP to
    loopback only when WEBHOOK_ALLOW_HTTP_LOOPBACK is set (tests, local development)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 (raises ValueError on a malformed port)
    except ValueError:
        return "This is not a valid URL."
    if parts.username or parts.password:
        return "Put no credentials in the URL: the signature authenticates each message."
    if parts.scheme == "https" and host:
        return ""
    if parts.scheme == "http" and host in LOOPBACK_HOSTS and settings.WEBHOOK_ALLOW_HTTP_LOOPBACK:
        return ""
    return "Webhook endpoints must use https://."


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: v1,<base64 HMAC-SHA256 of "id.timestamp.body">."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@lru_cache(maxsize=2)
def _pool(pid: int) -> urllib3.PoolManager:
    # One pool per process (a forked worker must not share its parent's sockets); kept-alive
    # connections per host up to the number of parallel posts.
    size = settings.WEBHOOK_CONCURRENCY
    return urllib3.PoolManager(
        num_pools=100,
        maxsize=size,
        block=False,
        # One immediate new try on a connection error (a kept-alive connection the endpoint
        # closed meanwhile, a reset): receivers de-duplicate on webhook-id, so a POST that did
        # arrive twice is harmless. Any answer (5xx included) is final for this try.
        retries=urllib3.Retry(
            total=1, connect=1, read=1, status=0, redirect=0, other=0, allowed_methods=None
        ),
        timeout=urllib3.Timeout(connect=5, read=settings.WEBHOOK_TIMEOUT_SECONDS),
        headers={"User-Agent": "NoFailMail-Webhooks/1", "Content-Type": "application/json"},
    )


@lru_cache(maxsize=2)
def _executor(pid: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=settings.WEBHOOK_CONCURRENCY, thread_name_prefix="hook")


@dataclass
class Claimed:
    id: int
    endpoint_id: int
    msg_id: str
    body: bytes


@dataclass
class Result:
    id: int
    endpoint_id: int
    ok: bool
    code: int | None
    body: str
    started: datetime
    ms: int
    error: str


def post(message: Claimed, url: str, secret: str) -> Result:
    """One signed POST; never raises (a failure is a Result)."""
    started = datetime.now(UTC)
    clock = time.monotonic()
    code, body, error = None, "", ""
    problem = url_problem(url)
    if problem:
        error = problem
    else:
        timestamp = int(time.time())
        headers = {
            "webhook-id": message.msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secret, message.msg_id, timestamp, message.body),
        }
        try:
            response = _pool(os.getpid()).request(
                "POST",
                url,
                body=message.body,
                headers=headers,
                preload_content=False,
                redirect=False,  # a redirect is an answer, not a place to post the body
            )
            try:
                code = response.status
                body = response.read(BODY_KEPT).decode("utf-8", errors="replace")
                response.drain_conn()
            finally:
                response.release_conn()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
    ms = int((time.monotonic() - clock) * 1000)
    ok = code is not None and 200 <= code < 300
    if code is not None and not ok:
        error = f"HTTP {code}"
    body = body.replace("\x00", "")  # PostgreSQL text takes no NUL
    return Result(message.id, message.endpoint_id, ok, code, body, started, ms, error)


_CLAIM_SQL = """
UPDATE webhooks_webhookmessage m
SET next_attempt_at = statement_timestamp() + %(lease)s * interval '1 second'
FROM (
  SELECT m2.id, COALESCE(m2.payload, CASE WHEN ev.id IS NOT NULL THEN EVENT_PAYLOAD END,
                         jsonb_build_object('type', m2.event_type, 'data', '{}'::jsonb))::text
         AS body
  FROM webhooks_webhookmessage m2
    LEFT JOIN analytics_event ev ON m2.payload IS NULL AND ev.uid = m2.ref
    LEFT JOIN campaigns_delivery d ON d.id = ev.delivery_id
    LEFT JOIN analytics_link l ON l.id = ev.link_id
  WHERE m2.status = 'pending' AND m2.next_attempt_at <= statement_timestamp()
    AND EXISTS (SELECT 1 FROM webhooks_webhookendpoint e WHERE e.id = m2.endpoint_id AND e.enabled)
  ORDER BY m2.next_attempt_at LIMIT %(limit)s
  FOR UPDATE OF m2 SKIP LOCKED
) picked
WHERE m.id = picked.id
RETURNING m.id, m.endpoint_id, m.msg_id, picked.body
""".replace("EVENT_PAYLOAD", EVENT_PAYLOAD_SQL)

_RECORD_SQL = """
WITH r AS (
  SELECT * FROM unnest(%(ids)s::bigint[], %(ok)s::bool[], %(codes)s::int[], %(bodies)s::text[],
                       %(started)s::timestamptz[], %(ms)s::int[], %(errors)s::text[])
    AS r(id, ok, code, body, started, ms, error)
), tries AS (
  INSERT INTO webhooks_webhookattempt (message_id, endpoint_id, started_at, duration_ms,
                                       response_code, response_body, error, ok)
  SELECT m.id, m.endpoint_id, r.started, r.ms, r.code, r.body, r.error, r.ok
  FROM r JOIN webhooks_webhookmessage m ON m.id = r.id
)
UPDATE webhooks_webhookmessage m SET
  attempts = m.attempts + 1,
  status = CASE WHEN r.ok THEN 'delivered'
                WHEN m.attempts + 1 >= %(max)s THEN 'failed' ELSE 'pending' END,
  delivered_at = CASE WHEN r.ok THEN statement_timestamp() ELSE m.delivered_at END,
  next_attempt_at = CASE WHEN r.ok THEN m.next_attempt_at
    ELSE statement_timestamp()
         + (%(backoff)s::int[])[LEAST(m.attempts + 1, %(steps)s)] * interval '1 second'
    END,
  last_response_code = r.code,
  last_error = r.error
FROM r WHERE m.id = r.id
"""


def claim(limit: int = BATCH_SIZE) -> list[Claimed]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {"lease": LEASE_SECONDS, "limit": limit})
        return [Claimed(i, e, m, body.encode()) for i, e, m, body in cursor.fetchall()]


def record(results: list[Result]) -> None:
    if not results:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _RECORD_SQL,
            {
                "ids": [r.id for r in results],
                "ok": [r.ok for r in results],
                "codes": [r.code for r in results],
                "bodies": [r.body for r in results],
                "started": [r.started for r in results],
                "ms": [r.ms for r in results],
                "errors": [r.error for r in results],
                "max": MAX_ATTEMPTS,
                "backoff": BACKOFF_SECONDS,
                "steps": len(BACKOFF_SECONDS),
            },
        )
        _count_failures(cursor, results)


def _count_failures(cursor: CursorWrapper, results: list[Result]) -> None:
    """Failures in a row per endpoint (any success starts the count again); past the limit
    the endpoint is disabled and an alert raised."""
    trailing: dict[int, int] = {}
    succeeded: set[int] = set()
    for r in results:  # in completion order
        if r.ok:
            succeeded.add(r.endpoint_id)
            trailing[r.endpoint_id] = 0
        else:
            trailing[r.endpoint_id] = trailing.get(r.endpoint_id, 0) + 1
    ids = list(trailing)
    cursor.execute(
        "UPDATE webhooks_webhookendpoint e SET consecutive_failures = "
        "CASE WHEN v.reset THEN v.n ELSE e.consecutive_failures + v.n END "
        "FROM unnest(%s::bigint[], %s::int[], %s::bool[]) AS v(id, n, reset) WHERE e.id = v.id",
        [ids, [trailing[i] for i in ids], [i in succeeded for i in ids]],
    )
    if not any(trailing.values()):
        return
    limit = settings.WEBHOOK_DISABLE_AFTER_FAILURES
    cursor.execute(
        "UPDATE webhooks_webhookendpoint SET enabled = false, disabled_reason = %s "
        "WHERE id = ANY(%s) AND enabled AND consecutive_failures >= %s RETURNING id",
        [
            f"Disabled automatically after {limit} failed attempts in a row.",
            [i for i in ids if trailing[i]],
            limit,
        ],
    )
    disabled = [i for (i,) in cursor.fetchall()]
    if disabled:
        endpoints_disabled_alert(endpoint_ids=disabled)


def dispatch_batch(limit: int = BATCH_SIZE) -> int:
    """Claim, post and record one batch; returns how many messages were tried."""
    claimed = claim(limit)
    if not claimed:
        return 0
    endpoints = {
        e.pk: e
        for e in WebhookEndpoint.objects.filter(pk__in={c.endpoint_id for c in claimed}).only(
            "url", "secret"
        )
    }
    pool = _executor(os.getpid())
    futures = [
        pool.submit(post, c, endpoints[c.endpoint_id].url, endpoints[c.endpoint_id].secret)
        for c in claimed
    ]
    results = [f.result() for f in futures]
    record(results)
    return len(results)


def dispatch_due(*, time_budget: float | None = None) -> tuple[int, bool]:
    """Post due messages batch after batch until none is due or the time budget is spent.
    Returns (messages tried, whether work is left)."""
    budget = settings.WEBHOOK_DISPATCH_SECONDS if time_budget is None else time_budget
    started = time.monotonic()
    done = 0
    while time.monotonic() - started < budget:
        tried = dispatch_batch()
        if not tried:
            return done, False
        done += tried
    return done, True
