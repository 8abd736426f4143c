"""The sending pipeline: claim a batch, render, hand off over one connection, record.

Exactly once, and what a crash leaves behind
--------------------------------------------
A row moves pending -> claimed -> sending -> sent/failed/skipped. The claim (one conditional
``UPDATE ... FOR UPDATE SKIP LOCKED`` per batch) marks a batch ``claimed`` under a random claim
token, so two workers never take the same row. Then, per message, ONE statement records the
outcome of the previous message *and* marks the next one ``sending``, before it is handed to
the backend. So at any instant a sender process has at most one row whose fate it does not
know yet: the one in ``sending``.

If the worker dies (kill -9, OOM, power), its claim token stops being refreshed in the shared
cache. Reconciliation (run by the dispatcher and at the start of every sending task) then finds
the dead token's rows and:

- puts ``claimed`` rows back to ``pending``: they were never handed to any backend, so sending
  them later cannot duplicate anything;
- moves the single ``sending`` row to ``unknown``: the backend may or may not have accepted it
  (the SMTP "250 OK" may have arrived a microsecond before the kill). Re-sending it blindly
  risks a duplicate; dropping it silently loses a recipient. Neither is acceptable, so the row
  is shown on the campaign page and the campaign does not finish until someone decides
  (resend, or accept as sent after checking the ESP's log by its Message-ID, which is
  deterministic: ``<d{delivery id}.c{campaign id}@domain>``).

Why not re-send after a crash and rely on Message-ID de-duplication? Receivers do not reliably
de-duplicate. Why not write ``sent`` per batch? Then a crash leaves a whole batch ambiguous
instead of one row per process. The price of this design is one small UPDATE per message,
committed with ``synchronous_commit = off`` (a worker crash cannot lose a commit PostgreSQL
acknowledged; only a database crash could lose the last few milliseconds).
"""

import contextlib
import logging
import os
import smtplib
import socket
import time
import uuid
from collections import Counter
from datetime import timedelta

from django.core import mail
from django.core.cache import cache
from django.core.mail import get_connection
from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from templates_app.fields import recipient_context, recipient_contexts

from .messages import MessageFactory
from .models import Campaign, Delivery, SandboxMessage, SendingConnection
from .throttle import domain_allowance, next_minute, rate_acquire, warmup_reserve

log = logging.getLogger(__name__)

BATCH_SIZE = 200
MAX_ATTEMPTS = 4
# Retry back-off for transient errors: 30 s, 2 min, 8 min.
BACKOFF_SECONDS = [30, 120, 480]


def claim_ttl() -> int:
    """Seconds after which a claim whose heartbeat stopped belongs to a dead worker."""
    return int(os.environ.get("CAMPAIGN_CLAIM_TTL", "30"))


def _heartbeat_key(token: str) -> str:
    return f"nfm:claim:{token}"


def _alive_key(campaign_id: int) -> str:
    return f"nfm:campaign-alive:{campaign_id}"


class TransientError(Exception):
    pass


def _classify(exc: Exception) -> tuple[bool, str]:
    """(transient?, message) for an exception raised while handing a message off."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, text = next(iter(exc.recipients.values()))
        return 400 <= code < 500, f"SMTP {code} {text.decode(errors='replace')}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500, (
            f"SMTP {exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected | socket.timeout | ConnectionError | OSError):
        return True, f"{exc.__class__.__name__}: {exc}"
    try:
        from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused

        if isinstance(exc, AnymailRecipientsRefused):
            return False, f"Refused by the ESP: {exc}"
        if isinstance(exc, AnymailAPIError):
            status = getattr(exc, "status_code", None)
            return status is None or status == 429 or status >= 500, f"ESP error: {exc}"
    except ImportError:  # pragma: no cover
        pass
    return False, f"{exc.__class__.__name__}: {exc}"


class Transport:
    """One reused connection per batch: raw SMTP, a Django/anymail backend, or the sandbox."""

    def __init__(self, campaign: Campaign, factory: MessageFactory):
        self.campaign = campaign
        self.factory = factory
        self.conn: SendingConnection | None = campaign.connection
        self.sandbox = campaign.is_test
        self.smtp: smtplib.SMTP | None = None
        self.backend = None

    def open(self):
        if self.sandbox:
            return
        if self.conn is None or self.conn.is_smtp:
            options = dict(self.conn.options if self.conn else {})
            from django.conf import settings

            host = options.get("host", settings.EMAIL_HOST)
            port = int(options.get("port", settings.EMAIL_PORT))
            self.smtp = smtplib.SMTP(host, port, timeout=options.get("timeout", 30))
            if options.get("use_tls"):
                self.smtp.starttls()
            if options.get("username"):
                self.smtp.login(options["username"], options.get("password", ""))
        else:
            self.backend = get_connection(
                self.conn.backend, fail_silently=False, **(self.conn.options or {})
            )
            self.backend.open()

    def close(self):
        if self.smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.smtp.quit()
            self.smtp = None
        if self.backend is not None:
            try:
                self.backend.close()
            except Exception:
                log.warning("closing %s failed", self.conn, exc_info=True)
            self.backend = None
        self.after_batch()

    def after_batch(self):
        # anymail's test backend keeps every message in memory and finds its ids by a
        # linear search: keep it bounded in long-running workers.
        if len(getattr(mail, "outbox", ())) > 1_000:
            mail.outbox.clear()

    def send(self, built) -> str:
        """Hand one message off; returns the message id; raises on failure."""
        if self.sandbox:
            raise AssertionError("sandbox messages are recorded, not sent")
        if self.smtp is not None:
            refused = self.smtp.sendmail(
                self.factory.from_email, [built.to], self.factory.raw(built)
            )
            if refused:
                raise smtplib.SMTPRecipientsRefused(refused)
            return built.message_id
        message = self.factory.email_message(built, connection=self.backend)
        if not self.backend.send_messages([message]):
            raise TransientError("the backend accepted no message")
        status = getattr(message, "anymail_status", None)
        if status is not None and status.message_id is not None:
            return str(status.message_id)
        return built.message_id

    def reopen(self):
        self.close()
        self.open()


_RECORD_SQL = """
UPDATE campaigns_delivery SET
  status = CASE WHEN id = %(next)s THEN 'sending' ELSE %(status)s END,
  message_id = CASE WHEN id = %(next)s THEN message_id ELSE %(message_id)s END,
  sent_at = CASE WHEN id = %(next)s THEN sent_at ELSE %(sent_at)s END,
  error = CASE WHEN id = %(next)s THEN error ELSE %(error)s END,
  not_before = CASE WHEN id = %(next)s THEN not_before ELSE %(not_before)s END
WHERE id IN (%(prev)s, %(next)s) AND claim_token = %(token)s
"""

_CLAIM_SQL = """
WITH picked AS (
  SELECT id FROM campaigns_delivery
  WHERE campaign_id = %(campaign)s AND status = 'pending'
    AND (not_before IS NULL OR not_before <= now())
  ORDER BY id LIMIT %(limit)s
  FOR UPDATE SKIP LOCKED
), blocked AS (
  -- Checked at claim time, so suppressions and unsubscribes made during the send count.
  UPDATE campaigns_delivery d SET status = 'skipped', claim_token = %(token)s,
    error = CASE
      WHEN s.id IS NULL THEN 'Subscriber deleted before sending.'
      WHEN EXISTS (SELECT 1 FROM subscribers_suppression p WHERE p.email_hash = d0.email_hash)
        THEN 'Address suppressed at sending time.'
      WHEN s.status <> 'active' THEN 'Subscriber is ' || s.status || ' at sending time.'
      ELSE 'Subscriber paused email at sending time.' END
  FROM picked
    JOIN campaigns_delivery d0 ON d0.id = picked.id
    LEFT JOIN subscribers_subscriber s ON s.id = d0.subscriber_id
  WHERE d.id = picked.id AND (
    s.id IS NULL OR s.status <> 'active' OR s.paused_until > now()
    OR EXISTS (SELECT 1 FROM subscribers_suppression p WHERE p.email_hash = d0.email_hash))
  RETURNING d.id
), claimed AS (
  UPDATE campaigns_delivery d SET status = 'claimed', claim_token = %(token)s,
    claimed_at = now(), attempts = d.attempts + 1
  FROM picked WHERE d.id = picked.id AND d.id NOT IN (SELECT id FROM blocked)
  RETURNING d.id, d.subscriber_id, d.email, d.domain
)
SELECT c.id, c.subscriber_id, c.email, c.domain
FROM claimed c JOIN subscribers_subscriber s ON s.id = c.subscriber_id
ORDER BY c.id
"""


def claim_batch(*, campaign: Campaign, token: str, limit: int) -> list[tuple]:
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {"campaign": campaign.pk, "token": token, "limit": limit})
        return cursor.fetchall()


def reconcile(*, campaign_id: int | None = None) -> dict[str, int]:
    """Rows held by dead claims: claimed -> pending, sending -> unknown (see module doc)."""
    qs = Delivery.objects.filter(status__in=[Delivery.Status.CLAIMED, Delivery.Status.SENDING])
    if campaign_id is not None:
        qs = qs.filter(campaign_id=campaign_id)
    cutoff = timezone.now() - timedelta(seconds=claim_ttl())
    tokens = set(
        qs.filter(claimed_at__lt=cutoff).order_by().values_list("claim_token", flat=True).distinct()
    )
    if not tokens:
        return {"released": 0, "unknown": 0}
    live = cache.get_many([_heartbeat_key(t) for t in tokens])
    dead = [t for t in tokens if _heartbeat_key(t) not in live]
    if not dead:
        return {"released": 0, "unknown": 0}
    released = qs.filter(claim_token__in=dead, status=Delivery.Status.CLAIMED).update(
        status=Delivery.Status.PENDING, claim_token=""
    )
    unknown = qs.filter(claim_token__in=dead, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.UNKNOWN,
        error="The worker died while handing this message to the backend: it may or may not "
        "have been sent. Check the ESP log for its Message-ID, then resend or accept it.",
    )
    if released or unknown:
        log.warning("reconciled dead claims %s: %s released, %s unknown", dead, released, unknown)
    return {"released": released, "unknown": unknown}


def _release(token: str, ids: list[int], *, not_before=None) -> None:
    """Give claimed rows back untouched (they were never handed off)."""
    from django.db.models import F

    if not ids:
        return
    Delivery.objects.filter(id__in=ids, claim_token=token).update(
        status=Delivery.Status.PENDING,
        claim_token="",
        not_before=not_before,
        attempts=F("attempts") - 1,
    )


class BatchResult:
    def __init__(self):
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self.trailing_failures = 0  # consecutive failures at the end of the batch
        self.any_success = False
        self.last_error = ""
        self.stopped = False


def send_batch(
    *,
    campaign: Campaign,
    factory: MessageFactory,
    transport: Transport,
    token: str,
    rows: list[tuple],
) -> BatchResult:
    result = BatchResult()
    conn = campaign.connection
    streak = campaign.consecutive_failures
    prev = {
        "prev": -1,
        "status": "",
        "message_id": "",
        "sent_at": None,
        "error": "",
        "not_before": None,
    }
    last_beat = time.monotonic()
    pending_tokens = 0
    # The batch's merge values, from the one builder the preview uses too (constant queries).
    recipients = recipient_contexts(row[1] for row in rows)
    with db.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
        try:
            for index, (delivery_id, subscriber_id, email, _domain) in enumerate(rows):
                if time.monotonic() - last_beat > 5:
                    _beat(token, campaign.pk)
                    last_beat = time.monotonic()
                if conn is not None and conn.rate_per_second and pending_tokens == 0:
                    pending_tokens = min(len(rows) - index, max(1, int(conn.rate_per_second / 10)))
                    rate_acquire(conn, pending_tokens)
                pending_tokens = max(pending_tokens - 1, 0)
                built = factory.build(
                    delivery_id=delivery_id,
                    subscriber_id=subscriber_id,
                    email=email,
                    recipient=recipients.get(subscriber_id) or recipient_context(email=email),
                )
                if transport.sandbox:
                    _record_sandbox(token, built, factory, campaign)
                    result.sent += 1
                    result.any_success = True
                    continue
                cursor.execute(_RECORD_SQL, {**prev, "next": delivery_id, "token": token})
                try:
                    message_id = _send_with_reconnect(transport, built)
                except Exception as exc:
                    transient, message = _classify(exc)
                    attempts = _attempts(delivery_id)
                    streak += 1
                    result.trailing_failures += 1
                    result.last_error = message
                    if transient and attempts < MAX_ATTEMPTS:
                        backoff = BACKOFF_SECONDS[min(attempts - 1, len(BACKOFF_SECONDS) - 1)]
                        prev = {
                            "prev": delivery_id,
                            "status": "pending",
                            "message_id": "",
                            "sent_at": None,
                            "error": f"Retrying: {message}",
                            "not_before": timezone.now() + timedelta(seconds=backoff),
                        }
                        result.retried += 1
                    else:
                        prev = {
                            "prev": delivery_id,
                            "status": "failed",
                            "message_id": "",
                            "sent_at": None,
                            "error": message,
                            "not_before": None,
                        }
                        result.failed += 1
                    if streak >= campaign.max_consecutive_failures:
                        result.stopped = True
                        cursor.execute(_RECORD_SQL, {**prev, "next": -1, "token": token})
                        prev["prev"] = -1
                        _release(token, [r[0] for r in rows[index + 1 :]])
                        break
                    continue
                streak = 0
                result.trailing_failures = 0
                result.any_success = True
                result.sent += 1
                prev = {
                    "prev": delivery_id,
                    "status": "sent",
                    "message_id": message_id,
                    "sent_at": timezone.now(),
                    "error": "",
                    "not_before": None,
                }
            if prev["prev"] != -1:
                cursor.execute(_RECORD_SQL, {**prev, "next": -1, "token": token})
        finally:
            cursor.execute("SET synchronous_commit TO DEFAULT")
    return result


def _attempts(delivery_id: int) -> int:
    return Delivery.objects.filter(pk=delivery_id).values_list("attempts", flat=True).first() or 1


def _send_with_reconnect(transport: Transport, built) -> str:
    try:
        return transport.send(built)
    except (smtplib.SMTPServerDisconnected, ConnectionError):
        # A dropped connection is retried once on a fresh one: nothing was accepted.
        transport.reopen()
        return transport.send(built)


def _record_sandbox(token: str, built, factory: MessageFactory, campaign: Campaign) -> None:
    """Test mode: the capture and the 'sent' mark commit together — exactly once, nothing out."""
    raw = factory.raw(built).decode("utf-8", errors="replace")
    with transaction.atomic():
        SandboxMessage.objects.create(
            campaign=campaign,
            delivery_id=built.delivery_id,
            to=built.to,
            subject=built.subject,
            html=built.html,
            text=built.text,
            headers=built.headers,
            raw=raw,
        )
        Delivery.objects.filter(pk=built.delivery_id, claim_token=token).update(
            status=Delivery.Status.SENT, sent_at=timezone.now(), message_id=built.message_id
        )


def _beat(token: str, campaign_id: int) -> None:
    ttl = claim_ttl()
    cache.set_many({_heartbeat_key(token): 1, _alive_key(campaign_id): 1}, timeout=ttl)


def senders_alive(campaign_id: int) -> bool:
    return cache.get(_alive_key(campaign_id)) is not None


def _apply_domain_caps(campaign: Campaign, token: str, rows: list[tuple]) -> list[tuple]:
    conn = campaign.connection
    if conn is None or not conn.domain_caps:
        return rows
    counts = Counter(r[3] for r in rows if r[3] in conn.domain_caps)
    if not counts:
        return rows
    allowed = domain_allowance(conn, dict(counts))
    keep, defer = [], []
    for row in rows:
        domain = row[3]
        if domain in allowed:
            if allowed[domain] > 0:
                allowed[domain] -= 1
                keep.append(row)
            else:
                defer.append(row[0])
        else:
            keep.append(row)
    _release(token, defer, not_before=next_minute())
    return keep


def campaign_send_work(*, campaign_id: int, time_budget: float = 60.0) -> str:
    """Claim and send batches until the campaign is done, paused, or the budget is spent.
    Returns why it stopped: 'done', 'idle' (only deferred rows left), 'stopped', 'budget',
    'warmup'. With NFM_COUNT_QUERIES=1 (bench/send.py) the SQL statements it ran are added up
    in the shared cache."""
    if not os.environ.get("NFM_COUNT_QUERIES"):
        return _send_work(campaign_id=campaign_id, time_budget=time_budget)
    count = [0]

    def counter(execute, sql, params, many, context):
        count[0] += 1
        return execute(sql, params, many, context)

    try:
        with db.execute_wrapper(counter):
            return _send_work(campaign_id=campaign_id, time_budget=time_budget)
    finally:
        from .throttle import _incr

        _incr(f"nfm:bench:queries:{campaign_id}", count[0], timeout=86400)


def _send_work(*, campaign_id: int, time_budget: float) -> str:
    reconcile(campaign_id=campaign_id)
    started = time.monotonic()
    campaign = Campaign.objects.select_related(
        "connection", "template_version", "template", "parent"
    ).get(pk=campaign_id)
    if campaign.status != Campaign.Status.RUNNING:
        return "stopped"
    factory = MessageFactory(campaign)
    transport = Transport(campaign, factory)
    opened = False
    try:
        while time.monotonic() - started < time_budget:
            status = Campaign.objects.filter(pk=campaign_id).values_list("status", flat=True)[0]
            if status != Campaign.Status.RUNNING:
                return "stopped"
            limit = BATCH_SIZE
            if campaign.connection is not None:
                limit = warmup_reserve(campaign.connection, limit)
                if limit == 0:
                    Campaign.objects.filter(pk=campaign_id).update(
                        status_reason="Warm-up: today's cap is reached; sending resumes "
                        "tomorrow (UTC)."
                    )
                    return "warmup"
            token = uuid.uuid4().hex
            _beat(token, campaign_id)
            rows = claim_batch(campaign=campaign, token=token, limit=limit)
            if campaign.connection is not None and len(rows) < limit:
                warmup_reserve(campaign.connection, len(rows) - limit)  # give back the unused
            rows = _apply_domain_caps(campaign, token, rows)
            if not rows:
                if campaign_maybe_finish(campaign_id=campaign_id):
                    return "done"
                if Delivery.objects.filter(
                    campaign_id=campaign_id, status=Delivery.Status.PENDING
                ).exists():
                    # Everything left waits (back-off, domain caps) or is being claimed.
                    if not Delivery.objects.filter(
                        campaign_id=campaign_id,
                        status=Delivery.Status.PENDING,
                        not_before__isnull=True,
                    ).exists():
                        return "idle"
                    continue
                return "idle"
            if not opened:
                transport.open()
                opened = True
            campaign.consecutive_failures = Campaign.objects.filter(pk=campaign_id).values_list(
                "consecutive_failures", flat=True
            )[0]
            result = send_batch(
                campaign=campaign, factory=factory, transport=transport, token=token, rows=rows
            )
            _after_batch(campaign, result)
            transport.after_batch()
            cache.delete(_heartbeat_key(token))
            if result.stopped:
                return "stopped"
        return "budget"
    finally:
        transport.close()


def _after_batch(campaign: Campaign, result: BatchResult) -> None:
    from django.db.models import F

    from .services import campaign_transition

    if result.any_success:
        Campaign.objects.filter(pk=campaign.pk).update(
            consecutive_failures=result.trailing_failures
        )
    elif result.trailing_failures:
        Campaign.objects.filter(pk=campaign.pk).update(
            consecutive_failures=F("consecutive_failures") + result.trailing_failures
        )
    streak = Campaign.objects.filter(pk=campaign.pk).values_list("consecutive_failures", "status")[
        0
    ]
    if streak[0] >= campaign.max_consecutive_failures and streak[1] == Campaign.Status.RUNNING:
        fresh = Campaign.objects.get(pk=campaign.pk)
        try:
            campaign_transition(
                campaign=fresh,
                to=Campaign.Status.PAUSED,
                reason=f"Paused automatically after {streak[0]} consecutive failures. "
                f"Last error: {result.last_error}",
            )
        except Exception:
            log.info("campaign %s already left running", campaign.pk)


def campaign_maybe_finish(*, campaign_id: int) -> bool:
    """Running -> finished once no row is pending, claimed, sending or unknown."""
    from .services import campaign_transition

    open_rows = Delivery.objects.filter(
        campaign_id=campaign_id,
        status__in=[
            Delivery.Status.PENDING,
            Delivery.Status.CLAIMED,
            Delivery.Status.SENDING,
            Delivery.Status.UNKNOWN,
        ],
    )
    if open_rows.exists():
        unknown = open_rows.filter(status=Delivery.Status.UNKNOWN).count()
        if unknown and not open_rows.exclude(status=Delivery.Status.UNKNOWN).exists():
            Campaign.objects.filter(pk=campaign_id).update(
                status_reason=f"{unknown} deliveries were interrupted during handoff: decide "
                "whether to resend them or accept them as sent."
            )
        return False
    campaign = Campaign.objects.get(pk=campaign_id)
    if campaign.status != Campaign.Status.RUNNING:
        return False
    try:
        campaign_transition(campaign=campaign, to=Campaign.Status.FINISHED)
    except Exception:
        return False
    return True


def test_send(*, campaign: Campaign, addresses: list[str]) -> list[SandboxMessage]:
    """Send the draft to seed addresses: always captured in the sandbox inbox (and, unless the
    campaign or connection is in test mode, delivered to those addresses only)."""
    from subscribers.models import Subscriber

    factory = MessageFactory(campaign, test_send=True)
    sample = dict(Subscriber.objects.filter(email__in=addresses).values_list("email", "pk"))
    recipients = recipient_contexts(sample.values())
    captured = []
    transport = Transport(campaign, factory)
    for address in addresses:
        pk = sample.get(address)
        built = factory.build(
            delivery_id=None,
            subscriber_id=pk or 0,
            email=address,
            recipient=recipients.get(pk) or recipient_context(email=address),
        )
        built.subject = f"[TEST] {built.subject}"
        captured.append(
            SandboxMessage.objects.create(
                campaign=campaign,
                to=address,
                subject=built.subject,
                html=built.html,
                text=built.text,
                headers=built.headers,
                raw=factory.raw(built).decode("utf-8", errors="replace"),
                is_test_send=True,
            )
        )
        if not transport.sandbox:
            if transport.smtp is None and transport.backend is None:
                transport.open()
            transport.send(built)
    transport.close()
    return captured
