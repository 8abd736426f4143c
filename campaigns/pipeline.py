"""The sending pipeline: claim a batch under a lease, render, hand off, record.

Exactly once, and what a fault leaves behind
--------------------------------------------
A row moves pending -> claimed -> (sending, in its sender's journal) -> sent | failed |
skipped | unknown.

**The lease.** A sending task first writes a ``SendLease`` row (a random token, an expiry a
``CAMPAIGN_CLAIM_TTL`` ahead, 30 s by default) and claims batches under that token with one
``UPDATE ... FOR UPDATE SKIP LOCKED``, so two senders never take the same row. A heartbeat
thread renews the lease every sixth of the TTL on its own connection, also while the main
thread is blocked in a send. The renewal is conditional (``WHERE expires_at > now()``): once
a lease has lapsed it can never come back, so "expired" means "dead" for good. The lease is a
row beside the ledger, so no Redis restart, FLUSHDB or eviction can release a live claim.

**Fenced writes.** Per message, ONE statement records the outcome of the previous message and
marks the next one ``sending``, in the sender's journal (``Handoff``: one narrow row per
delivery, no index but its key and the token, no trigger) rather than on the ledger row. It
only touches rows still carrying our token in the state we left them (``sending`` for the
outcome, a ``claimed`` ledger row for the next), and it marks the next row only while the
lease has at least a third of its TTL left and the campaign is still running. Its
``RETURNING`` says which rows it touched: if the next row was refused (the campaign was paused
or cancelled, or the lease is lost), the sender gives its other claimed rows back and stops
at once, without sending another message. Just before each handoff the sender also checks,
on its monotonic clock, that its last successful renewal is recent enough: a process frozen
past its lease (SIGSTOP, a long GC pause, a VM migration) notices on waking, before anything
else goes out.

Every second, every ``MOVE_ROWS`` messages and at the end of the batch, the decided rows move
from the journal onto the ledger in one statement (``DELETE ... RETURNING`` feeding one
``UPDATE``: one run of the counters' trigger for the lot). Taking a row out of the journal
and writing it on the ledger is one atomic step, done by the sender or by reconciliation,
whichever deletes it first; the ledger row must still be ``claimed`` under the same token.
A thawed sender never overwrites a row that reconciliation moved: its journal rows are gone.

So at any instant a sender has at most one row whose fate it does not know: the one in
``sending`` in its journal.

**Reconciliation** (at the start of every sending task, and on every dispatcher tick) finds
in-flight rows whose token has no live lease and:

- writes the outcomes its journal holds, as decided;
- moves the journal's ``sending`` row to ``unknown``: the backend may or may not have taken it;
- puts the other ``claimed`` rows back to ``pending``: they were never handed off.

**The handoff.** Over SMTP the sender knows whether the message body went out: a connection
lost, a timeout or a garbled answer *after* the final ``.`` moves that one row to ``unknown``
(the server may have queued it, its "250 OK" lost on the way), never to a blind resend. A
failure *before* the body went out (connect, MAIL, RCPT, the DATA command) sent nothing: the
message is tried once more on a fresh connection; if the server still cannot be reached, the
row and the rest of the batch go back to ``pending`` with a back-off (no attempt counted, no
row failed) and the campaign shows "waiting for the server since ...". An explicit answer
decides by itself: 4xx retries with back-off (up to ``MAX_ATTEMPTS`` over about eight hours,
like an MTA), 5xx fails the row and goes through the same feedback path as an ESP bounce
(``analytics.ingest``): an address-caused refusal suppresses the address, a sender-caused one
(authentication, policy, reputation) counts against the connection and domain.

``unknown`` rows are listed on the campaign page with their Message-ID (deterministic:
``<d{delivery id}.c{campaign id}@domain>``, stored when the row is marked ``sending``) and a
person resends or accepts them, one by one or all at once; an optional per-campaign policy
settles those left undecided after some hours (by default counted as sent: a duplicate costs
more reputation than one missed message). Every settlement is recorded on the row.

Why not re-send after a crash and rely on Message-ID de-duplication? Receivers do not reliably
de-duplicate. Why not write ``sent`` per batch? Then a crash leaves a whole batch ambiguous
instead of one row per process. The price of this design is one small journal write per
message, committed with ``synchronous_commit = off`` (a worker crash cannot lose a commit
PostgreSQL acknowledged; only a database crash could lose the last few milliseconds).
"""

import contextlib
import logging
import os
import smtplib
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.core import mail
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import DatabaseError, transaction
from django.db import connection as db
from django.db.backends.utils import CursorWrapper
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from analytics.bounces import SENDER as SENDER_CAUSED
from analytics.bounces import bounce_kind
from analytics.ingest import Fact, ingest_facts
from templates_app.fields import recipient_context, recipient_contexts
from webhooks import emit as webhooks_emit

from .messages import BuiltMessage, MessageFactory
from .models import Campaign, CampaignTransitionError, Delivery, SandboxMessage, SendLease
from .smtp_connect import (
    ConnectionDown,
    LedgerSMTP,
    SetupError,
    SmtpSettings,
    is_setup_refusal,
    smtp_open,
)
from .smtp_connect import smtp_error_text as _describe
from .throttle import _incr, domain_allowance, next_minute, rate_acquire, warmup_reserve
from .transitions import campaign_transition

log = logging.getLogger(__name__)

BATCH_SIZE = 200
# Handed-off outcomes reach the ledger from the journal at least this often (see Handoff).
MOVE_ROWS = 100
MOVE_SECONDS = 1.0
# Transient answers (4xx) are retried like an MTA would, for about eight hours in all.
BACKOFF_SECONDS = [30, 120, 480, 1800, 3600, 7200, 14400]
MAX_ATTEMPTS = len(BACKOFF_SECONDS) + 1
# While the server cannot be reached: wait as long as it has been down, within these bounds.
OUTAGE_BACKOFF = (5, 300)


def claim_ttl() -> int:
    """Seconds a lease lives without renewal: after that its holder is taken for dead."""
    return int(os.environ.get("CAMPAIGN_CLAIM_TTL", "30"))


def send_time_budget() -> float:
    """Seconds one sending task works before it hands its place to a fresh task (so other
    campaigns and other workers get their turn)."""
    return float(os.environ.get("CAMPAIGN_SEND_TIME_BUDGET", "60"))


def outage_pause_minutes() -> int:
    """An unreachable server pauses the campaign after this long (it waits until then)."""
    return int(os.environ.get("CAMPAIGN_OUTAGE_PAUSE_MINUTES", "30"))


class TransientError(Exception):
    pass


class LeaseLost(Exception):
    """This sender's lease lapsed: its rows may belong to someone else now."""


class HandoffUnknown(Exception):
    """The message body went out but its fate was never confirmed (see the module doc)."""


class ClaimedRow(NamedTuple):
    id: int
    subscriber_id: int
    email: str
    domain: str


# --------------------------------------------------------------------------------------------
# The lease


class Lease:
    """A sender's lease (see the module doc): acquire, renew from a thread, check, release."""

    def __init__(self, *, campaign_id: int, ttl: int | None = None):
        self.campaign_id = campaign_id
        self.ttl = ttl or claim_ttl()
        # The next row is marked ``sending`` only while this much of the lease is left.
        self.margin = self.ttl / 3
        self.token = uuid.uuid4().hex
        self._valid_until = 0.0  # monotonic
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> "Lease":
        started = time.monotonic()
        with db.cursor() as cursor:
            cursor.execute(
                "INSERT INTO campaigns_sendlease (token, campaign_id, expires_at, created_at, "
                "host) VALUES (%s, %s, now() + %s * interval '1 second', now(), %s)",
                [self.token, self.campaign_id, self.ttl, f"{socket.gethostname()}:{os.getpid()}"],
            )
        self._valid_until = started + self.ttl - self.margin
        # Inside a transaction (tests) nobody else can see the lease or the rows it covers, so
        # nobody can take them back; and a thread's own connection could not see the lease
        # either. There the sender renews it itself between messages.
        if not db.in_atomic_block:
            self._thread = threading.Thread(
                target=self._heartbeat, name=f"lease-{self.token[:8]}", daemon=True
            )
            self._thread.start()
        return self

    def renew(self) -> bool | None:
        """Extend the lease; False once it has lapsed (for good), None if the database did
        not answer (the lease then simply runs down)."""
        started = time.monotonic()
        try:
            with db.cursor() as cursor:
                cursor.execute(
                    "UPDATE campaigns_sendlease SET expires_at = now() + %s * interval '1 second'"
                    " WHERE token = %s AND expires_at > now()",
                    [self.ttl, self.token],
                )
                renewed = cursor.rowcount == 1
        except DatabaseError:
            log.warning("lease %s: renewal failed", self.token, exc_info=True)
            return None
        if renewed:
            self._valid_until = started + self.ttl - self.margin
        else:
            self._lost.set()
        return renewed

    def _heartbeat(self) -> None:
        try:
            while not self._stop.wait(self.ttl / 6):
                if self.renew() is False:
                    log.warning("lease %s lapsed: its sender stops", self.token)
                    return
        finally:
            db.close()

    def check(self) -> None:
        if self._thread is None and time.monotonic() > self._valid_until - self.margin:
            self.renew()
        if self._lost.is_set() or time.monotonic() >= self._valid_until:
            self._lost.set()
            raise LeaseLost(self.token)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl)
        with contextlib.suppress(DatabaseError), db.cursor() as cursor:
            # Rows still in flight under this token (an exception mid-batch) keep the lease
            # row until it expires, so reconciliation handles them like a crash.
            cursor.execute(
                "DELETE FROM campaigns_sendlease WHERE token = %s AND NOT EXISTS (SELECT 1 FROM "
                "campaigns_delivery WHERE claim_token = %s AND status IN ('claimed', 'sending'))",
                [self.token, self.token],
            )


# --------------------------------------------------------------------------------------------
# The transport


class Transport:
    """One reused connection per sender: raw SMTP, a Django/anymail backend, or the sandbox."""

    def __init__(self, campaign: Campaign, factory: MessageFactory):
        self.campaign = campaign
        self.factory = factory
        self.conn = campaign.connection
        self.sandbox = campaign.is_test
        self.is_smtp = self.conn is None or self.conn.is_smtp
        self.smtp: LedgerSMTP | None = None
        self.backend: BaseEmailBackend | None = None

    def open(self) -> None:
        if self.sandbox:
            return
        if self.conn is None or self.conn.is_smtp:
            self._open_smtp()
        else:
            self.backend = get_connection(
                self.conn.backend, fail_silently=False, **(self.conn.options or {})
            )
            self.backend.open()

    def _open_smtp(self) -> LedgerSMTP:
        self.smtp = smtp_open(SmtpSettings.of(self.conn))
        return self.smtp

    def close(self) -> None:
        if self.smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.smtp.quit()
            with contextlib.suppress(OSError):
                self.smtp.close()
            self.smtp = None
        if self.backend is not None:
            try:
                self.backend.close()
            except Exception:  # an ESP backend's close may raise anything; the batch is done
                log.warning("closing %s failed", self.conn, exc_info=True)
            self.backend = None
        self.after_batch()

    def after_batch(self) -> None:
        # anymail's test backend keeps every message in memory and finds its ids by a
        # linear search: keep it bounded in long-running workers.
        if len(getattr(mail, "outbox", ())) > 1_000:
            mail.outbox.clear()

    def send(self, built: BuiltMessage) -> str:
        """Hand one message off; returns the message id. Raises HandoffUnknown when the body
        went out unconfirmed, ConnectionDown when nothing went out for lack of a connection,
        or the backend's own error for an explicit refusal."""
        if self.sandbox:
            raise AssertionError("sandbox messages are recorded, not sent")
        if self.is_smtp:
            return self._send_smtp(built)
        if self.backend is None:
            self.open()
        backend = self.backend
        assert backend is not None  # open() makes one for a transport that is not SMTP
        message = self.factory.email_message(built, connection=backend)
        if not backend.send_messages([message]):
            raise TransientError("the backend accepted no message")
        status = getattr(message, "anymail_status", None)
        if status is not None and status.message_id is not None:
            return str(status.message_id)
        return built.message_id

    def _send_smtp(self, built: BuiltMessage) -> str:
        smtp = self.smtp if self.smtp is not None else self._open_smtp()
        smtp.body_sent = False
        try:
            refused = smtp.sendmail(
                self.factory.envelope_sender(built), [built.to], self.factory.signed_raw(built)
            )
        except smtplib.SMTPResponseException as exc:
            if isinstance(exc, smtplib.SMTPSenderRefused) and is_setup_refusal(exc):
                self._drop()
                raise SetupError(f"The server refused the sender: {_describe(exc)}") from exc
            if exc.smtp_code == 421:  # "service not available, closing channel"
                self._drop()
                raise ConnectionDown(_describe(exc)) from exc
            raise
        except smtplib.SMTPRecipientsRefused:
            raise
        except OSError as exc:  # SMTPServerDisconnected, a timeout, a reset (SMTPException too)
            self._drop()
            if smtp.body_sent:
                raise HandoffUnknown(
                    f"The connection was lost after the message was sent, before the server "
                    f"confirmed it ({_describe(exc)})."
                ) from exc
            raise ConnectionDown(_describe(exc)) from exc
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)
        return built.message_id

    def _drop(self) -> None:
        if self.smtp is not None:
            with contextlib.suppress(OSError):
                self.smtp.close()
            self.smtp = None


@dataclass
class Refusal:
    """An explicit answer from the server or the ESP about one message."""

    transient: bool
    message: str
    smtp_code: int | None = None
    sender_side: bool = False  # MAIL FROM refused: about us, never about the address


def _classify(exc: Exception) -> Refusal:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, answer = next(iter(exc.recipients.values()))
        text = answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer)
        return Refusal(400 <= code < 500, f"SMTP {code} {text}", code)
    if isinstance(exc, smtplib.SMTPResponseException):
        return Refusal(
            400 <= exc.smtp_code < 500,
            _describe(exc),
            exc.smtp_code,
            sender_side=isinstance(exc, smtplib.SMTPSenderRefused),
        )
    if isinstance(exc, TransientError | socket.timeout | ConnectionError):
        return Refusal(True, _describe(exc))

    if isinstance(exc, AnymailRecipientsRefused):
        return Refusal(False, f"Refused by the ESP: {exc}")
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        return Refusal(status is None or status == 429 or status >= 500, f"ESP error: {exc}")
    return Refusal(False, _describe(exc))


# --------------------------------------------------------------------------------------------
# Claims and outcomes

# The function is campaigns.migrations.0008_handoff_journal's (planned once per connection).
_RECORD_SQL = """
SELECT campaigns_handoff_record(%(token)s, %(margin)s, %(prev)s, %(status)s, %(message_id)s,
  %(sent_at)s, %(error)s, %(not_before)s, %(attempts_adjust)s, %(next)s, %(next_message_id)s)
"""

# The journal's decided rows onto the ledger, in one statement (one trigger run for the
# counters). Taking them out of the journal and writing them is one atomic step, so a row is
# moved once, by its sender or by reconciliation, whichever deletes it first.
_MOVE_SQL = """
WITH done AS (
  DELETE FROM campaigns_handoff h WHERE {which}
  RETURNING h.delivery_id, h.token, h.status, h.message_id, h.sent_at, h.error, h.not_before,
            h.attempts_adjust
)
UPDATE campaigns_delivery d SET
  status = CASE WHEN done.status = 'sending' THEN 'unknown' ELSE done.status END,
  message_id = COALESCE(NULLIF(done.message_id, ''), d.message_id),
  sent_at = done.sent_at,
  error = CASE WHEN done.status = 'sending' THEN %(unknown_error)s ELSE done.error END,
  not_before = done.not_before,
  attempts = greatest(d.attempts + done.attempts_adjust, 0)
FROM done
WHERE d.id = done.delivery_id AND d.claim_token = done.token AND d.status = 'claimed'
-- Asynchronous commit for this statement's own transaction only (see the record function).
RETURNING d.id, d.status, set_config('synchronous_commit', 'off', true)
"""
_UNKNOWN_ERROR = (
    "Its sender stopped (crashed, or froze past its lease) while handing this message to the "
    "server: it may or may not have been sent. Check the server's log for its Message-ID, "
    "then resend or accept it."
)


_CLAIM_SQL = """
WITH picked AS (
  SELECT id FROM campaigns_delivery
  WHERE campaign_id = %(campaign)s AND status = 'pending'
    AND (not_before IS NULL OR not_before <= now())
    AND EXISTS (SELECT 1 FROM campaigns_sendlease l WHERE l.token = %(token)s
                AND l.expires_at > now() + %(margin)s * interval '1 second')
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


def claim_batch(*, campaign: Campaign, lease: Lease, limit: int) -> list[ClaimedRow]:
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {"campaign": campaign.pk, "token": lease.token, "limit": limit, "margin": lease.margin},
        )
        return [ClaimedRow(*row) for row in cursor.fetchall()]


_DEAD_TOKENS_SQL = """
SELECT DISTINCT d.claim_token FROM campaigns_delivery d
WHERE d.status IN ('claimed', 'sending') {campaign}
  AND NOT EXISTS (SELECT 1 FROM campaigns_sendlease l
                  WHERE l.token = d.claim_token AND l.expires_at > now())
"""


def reconcile(*, campaign_id: int | None = None) -> dict[str, int]:
    """Rows held by lapsed leases: claimed -> pending, sending -> unknown (see module doc)."""
    with db.cursor() as cursor:
        if campaign_id is None:
            cursor.execute(_DEAD_TOKENS_SQL.format(campaign=""))
        else:
            cursor.execute(
                _DEAD_TOKENS_SQL.format(campaign="AND d.campaign_id = %s"), [campaign_id]
            )
        dead = [token for (token,) in cursor.fetchall()]
    if not dead:
        return {"released": 0, "unknown": 0}
    with transaction.atomic():
        # What the dead senders had journaled: decided outcomes land as decided, the message
        # that was being handed off becomes ``unknown``.
        with db.cursor() as cursor:
            cursor.execute(
                _MOVE_SQL.format(which="h.token = ANY(%(dead)s)"),
                {"dead": dead, "unknown_error": _UNKNOWN_ERROR},
            )
            written = cursor.fetchall()
            moved = [status for _, status, _ in written]
        webhooks_emit.deliveries_sent(pk for pk, status, _ in written if status == "sent")
        in_flight = Delivery.objects.filter(claim_token__in=dead)
        released = in_flight.filter(status=Delivery.Status.CLAIMED).update(
            status=Delivery.Status.PENDING, claim_token="", attempts=Greatest(F("attempts") - 1, 0)
        )
        # Rows marked ``sending`` on the ledger itself (by a sender of an earlier release).
        unknown = moved.count(Delivery.Status.UNKNOWN) + in_flight.filter(
            status=Delivery.Status.SENDING
        ).update(status=Delivery.Status.UNKNOWN, error=_UNKNOWN_ERROR)
    SendLease.objects.filter(token__in=dead, expires_at__lte=timezone.now()).delete()
    if released or unknown:
        log.warning("reconciled lapsed leases %s: %s released, %s unknown", dead, released, unknown)
    return {"released": released, "unknown": unknown}


def _release(token: str, ids: list[int], *, not_before: datetime | None = None) -> int:
    """Give claimed rows back untouched (they were never handed off)."""
    if not ids:
        return 0
    return Delivery.objects.filter(
        id__in=ids, claim_token=token, status=Delivery.Status.CLAIMED
    ).update(
        status=Delivery.Status.PENDING,
        claim_token="",
        not_before=not_before,
        attempts=Greatest(F("attempts") - 1, 0),
    )


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    unknown: int = 0
    trailing_failures: int = 0  # consecutive failures at the end of the batch
    any_success: bool = False
    last_error: str = ""
    stopped: bool = False  # too many consecutive failures
    interrupted: bool = False  # paused, cancelled, or the lease lost: nothing more was sent
    outage: str = ""  # the server could not be reached: why
    setup: str = ""  # the connection's settings keep anything from going out: why


@dataclass
class _Outcome:
    """What to write on the row just handed off, in the next record statement."""

    prev: int = -1
    status: str = ""
    message_id: str = ""
    sent_at: Any = None
    error: str = ""
    not_before: Any = None
    attempts_adjust: int = 0

    def params(self) -> dict[str, Any]:
        return {
            "prev": self.prev,
            "status": self.status,
            "message_id": self.message_id,
            "sent_at": self.sent_at,
            "error": self.error,
            "not_before": self.not_before,
            "attempts_adjust": self.attempts_adjust,
        }


def _record(
    cursor: CursorWrapper, outcome: _Outcome, *, lease: Lease, next_id: int, next_message_id: str
) -> tuple[bool, bool]:
    """The fenced write: returns (outcome written?, next row marked sending?)."""
    cursor.execute(
        _RECORD_SQL,
        {
            **outcome.params(),
            "next": next_id,
            "next_message_id": next_message_id,
            "token": lease.token,
            "margin": lease.margin,
        },
    )
    touched = {row[0] for row in cursor.fetchall()}
    if outcome.prev != -1 and outcome.prev not in touched:
        log.warning(
            "delivery %s was taken back before its outcome (%s) was written: left as found",
            outcome.prev,
            outcome.status,
        )
    return outcome.prev in touched, next_id in touched


def _move_decided(cursor: CursorWrapper, token: str, expected: int) -> int:
    """The journal's decided rows of this sender onto the ledger (one statement); the row
    being handed off stays in the journal. The delivery.sent webhooks of the rows it wrote
    are queued in the same transaction (one INSERT ... SELECT, none when no endpoint
    listens)."""
    with transaction.atomic():
        cursor.execute(
            _MOVE_SQL.format(which="h.token = %(token)s AND h.status <> 'sending'"),
            {"token": token, "unknown_error": _UNKNOWN_ERROR},
        )
        rows = cursor.fetchall()
        webhooks_emit.deliveries_sent(pk for pk, status, _ in rows if status == "sent")
    moved = len(rows)
    if moved != expected:
        # Reconciliation took the journal of a lease that lapsed: it wrote these itself.
        log.warning(
            "lease %s: %s of %s outcomes moved by reconciliation", token, expected - moved, expected
        )
    return moved


def send_batch(
    *,
    campaign: Campaign,
    factory: MessageFactory,
    transport: Transport,
    lease: Lease,
    rows: list[ClaimedRow],
) -> BatchResult:
    """Send claimed rows one by one, each outcome written fenced with the next row's mark
    (see the module doc); stops at the first row it may not send."""
    batch = _Batch(
        campaign=campaign,
        factory=factory,
        transport=transport,
        lease=lease,
        streak=campaign.consecutive_failures,
    )
    # Every recipient's merge values in a constant number of queries (the preview's builder).
    recipients = recipient_contexts(row.subscriber_id for row in rows)
    with db.cursor() as cursor:
        for index, row in enumerate(rows):
            if not batch.send_row(cursor, row, recipients, rest=rows[index + 1 :]):
                break
        batch.settle(cursor, rows)
    return batch.result


@dataclass
class _Batch:
    """One batch on its way out: what is known so far, and the outcome not yet written."""

    campaign: Campaign
    factory: MessageFactory
    transport: Transport
    lease: Lease
    streak: int  # consecutive failures, counted on from the campaign's
    result: BatchResult = field(default_factory=BatchResult)
    outcome: _Outcome = field(default_factory=_Outcome)
    bounces: list[Fact] = field(default_factory=list)
    accepted: list[Fact] = field(default_factory=list)
    decided: int = 0  # outcomes in the journal, not yet on the ledger
    moved_at: float = field(default_factory=time.monotonic)

    def move_decided(self, cursor: CursorWrapper, *, force: bool = False) -> None:
        """Decided outcomes onto the ledger every MOVE_ROWS messages or MOVE_SECONDS, so the
        campaign's progress moves at any sending rate; at the end of the batch, all."""
        if self.decided and (
            force or self.decided >= MOVE_ROWS or time.monotonic() - self.moved_at >= MOVE_SECONDS
        ):
            _move_decided(cursor, self.lease.token, self.decided)
            self.decided = 0
            self.moved_at = time.monotonic()

    def send_row(
        self,
        cursor: CursorWrapper,
        row: ClaimedRow,
        recipients: Mapping[int, Mapping[str, Any]],
        *,
        rest: list[ClaimedRow],
    ) -> bool:
        """Mark one row sending (writing the previous row's outcome), hand it off, keep its
        outcome for the next write. False: send nothing more from this batch."""
        try:
            self.lease.check()
        except LeaseLost:
            self.result.interrupted = True
            return False
        conn = self.campaign.connection
        if conn is not None and conn.rate_per_second:
            if self.outcome.prev != -1 and not self.transport.sandbox:
                # The previous message's outcome first: a sender killed while it waits for
                # its turn (the likeliest moment, at a low rate) then leaves nothing unknown.
                written, _ = _record(
                    cursor, self.outcome, lease=self.lease, next_id=-1, next_message_id=""
                )
                self.outcome = _Outcome()
                self.decided += written
            rate_acquire(conn)
        built = self.factory.build(
            delivery_id=row.id,
            subscriber_id=row.subscriber_id,
            email=row.email,
            recipient=recipients.get(row.subscriber_id) or recipient_context(email=row.email),
        )
        if self.transport.sandbox:
            if not _record_sandbox(self.lease.token, built, self.factory, self.campaign):
                self.result.interrupted = True
                return False
            self.result.sent += 1
            self.result.any_success = True
            return True
        written, marked = _record(
            cursor, self.outcome, lease=self.lease, next_id=row.id, next_message_id=built.message_id
        )
        self.outcome = _Outcome()
        self.decided += written
        self.move_decided(cursor)
        if not marked:
            # Paused, cancelled, or the lease lapsed: not one more message.
            self.result.interrupted = True
            return False
        return self._hand_off(row, built, rest=rest)

    def _hand_off(self, row: ClaimedRow, built: BuiltMessage, *, rest: list[ClaimedRow]) -> bool:
        """Send the row marked ``sending`` and decide what its outcome is."""
        token = self.lease.token
        try:
            self.lease.check()
            message_id = _send_with_reconnect(self.transport, built)
        except LeaseLost:
            self.outcome = _Outcome(prev=row.id, status="pending", attempts_adjust=-1)
            self.result.interrupted = True
            return False
        except HandoffUnknown as exc:
            self.outcome = _Outcome(prev=row.id, status="unknown", error=str(exc))
            self.result.unknown += 1
            self.result.last_error = str(exc)
            return True
        except ConnectionDown as exc:
            # Nothing went out: this row and the rest wait for the server to come back.
            wait = _outage_backoff(self.campaign)
            self.outcome = _Outcome(
                prev=row.id,
                status="pending",
                error=f"Waiting for the server: {exc}",
                not_before=timezone.now() + timedelta(seconds=wait),
                attempts_adjust=-1,
            )
            _release(
                token, [r.id for r in rest], not_before=timezone.now() + timedelta(seconds=wait)
            )
            self.result.outage = str(exc)
            return False
        except SetupError as exc:
            # Nothing went out, and nothing will until a person fixes the settings.
            self.outcome = _Outcome(
                prev=row.id, status="pending", error=str(exc), attempts_adjust=-1
            )
            _release(token, [r.id for r in rest])
            self.result.setup = str(exc)
            return False
        except Exception as exc:  # any backend's answer: _refused classifies it
            return self._refused(row, built, exc, rest=rest)
        self.streak = 0
        self.result.trailing_failures = 0
        self.result.any_success = True
        self.result.sent += 1
        self.outcome = _Outcome(
            prev=row.id, status="sent", message_id=message_id, sent_at=timezone.now()
        )
        if self.transport.is_smtp:
            # No ESP reports deliveries over SMTP: the server's "250" is the delivery
            # report, or every rate (bounces, complaints) would divide by nothing.
            self.accepted.append(_accepted_fact(row, message_id))
        return True

    def _refused(
        self, row: ClaimedRow, built: BuiltMessage, exc: Exception, *, rest: list[ClaimedRow]
    ) -> bool:
        """An explicit refusal (or an unexpected error): retry later, or fail the row."""
        refusal = _classify(exc)
        attempts = _attempts(row.id)
        self.streak += 1
        self.result.trailing_failures += 1
        self.result.last_error = refusal.message
        if refusal.transient and attempts < MAX_ATTEMPTS:
            backoff = BACKOFF_SECONDS[min(attempts - 1, len(BACKOFF_SECONDS) - 1)]
            self.outcome = _Outcome(
                prev=row.id,
                status="pending",
                error=f"Retrying (attempt {attempts} of {MAX_ATTEMPTS}): {refusal.message}",
                not_before=timezone.now() + timedelta(seconds=backoff),
            )
            self.result.retried += 1
        else:
            if refusal.transient:
                refusal.message = f"Gave up after {attempts} attempts: {refusal.message}"
            self.outcome = _Outcome(prev=row.id, status="failed", error=refusal.message)
            self.result.failed += 1
            if refusal.smtp_code and refusal.smtp_code >= 500:
                self.bounces.append(_bounce_fact(row, built, refusal))
        if self.streak >= self.campaign.max_consecutive_failures:
            self.result.stopped = True
            _release(self.lease.token, [r.id for r in rest])
            return False
        return True

    def settle(self, cursor: CursorWrapper, rows: list[ClaimedRow]) -> None:
        """After the last row: file the synchronous feedback, write the last outcome, give
        back whatever an interruption left claimed."""
        if self.bounces or self.accepted:
            # Synchronous answers take the same path as an ESP's webhook; before the
            # batch's last row is settled, so a finished campaign has its feedback.
            ingest_facts(self.bounces + self.accepted)
        if self.outcome.prev != -1:
            written, _ = _record(
                cursor, self.outcome, lease=self.lease, next_id=-1, next_message_id=""
            )
            self.decided += written
        self.move_decided(cursor, force=True)
        result = self.result
        if result.interrupted or result.outage or result.setup:
            _release(self.lease.token, [r.id for r in rows])


def _accepted_fact(row: ClaimedRow, message_id: str) -> Fact:
    return Fact(
        uid=f"smtp-accepted:{row.id}",
        kind="delivered",
        occurred_at=timezone.now(),
        delivery_id=row.id,
        message_id=message_id,
        recipient=row.email,
        esp="smtp",
        reason="Accepted by the SMTP server (250)",
    )


def _bounce_fact(row: ClaimedRow, built: BuiltMessage, refusal: Refusal) -> Fact:
    kind = (
        SENDER_CAUSED
        if refusal.sender_side
        else bounce_kind(smtp_code=refusal.smtp_code, text=refusal.message)
    )
    return Fact(
        # One refusal per delivery (a failed row is final): a replay counts once.
        uid=f"smtp-refusal:{row.id}",
        kind="bounced",
        occurred_at=timezone.now(),
        delivery_id=row.id,
        message_id=built.message_id,
        recipient=row.email,
        esp="smtp",
        bounce_type=kind,
        reason=refusal.message[:300],
    )


def _outage_backoff(campaign: Campaign) -> float:
    since = Campaign.objects.filter(pk=campaign.pk).values_list("connection_down_since", flat=True)
    down_since = since[0] if since else None
    elapsed = (timezone.now() - down_since).total_seconds() if down_since else 0
    low, high = OUTAGE_BACKOFF
    return min(max(elapsed, low), high)


def _attempts(delivery_id: int) -> int:
    return Delivery.objects.filter(pk=delivery_id).values_list("attempts", flat=True).first() or 1


def _send_with_reconnect(transport: Transport, built: BuiltMessage) -> str:
    try:
        return transport.send(built)
    except ConnectionDown:
        # Dropped before the body went out: nothing was accepted, one fresh try.
        transport.close()
        return transport.send(built)


def _record_sandbox(
    token: str, built: BuiltMessage, factory: MessageFactory, campaign: Campaign
) -> bool:
    """Test mode: the capture and the 'sent' mark commit together — exactly once, nothing out."""
    assert built.delivery_id is not None  # a batch's messages are deliveries
    raw = factory.signed_raw(built).decode("utf-8", errors="replace")
    with transaction.atomic():
        marked = Delivery.objects.filter(
            pk=built.delivery_id,
            claim_token=token,
            status=Delivery.Status.CLAIMED,
            campaign__status=Campaign.Status.RUNNING,
        ).update(status=Delivery.Status.SENT, sent_at=timezone.now(), message_id=built.message_id)
        if not marked:
            return False
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
    return True


def senders_alive(campaign_id: int) -> bool:
    return SendLease.objects.filter(campaign_id=campaign_id, expires_at__gt=timezone.now()).exists()


def _apply_domain_caps(campaign: Campaign, token: str, rows: list[ClaimedRow]) -> list[ClaimedRow]:
    conn = campaign.connection
    if conn is None or not conn.domain_caps:
        return rows
    counts = Counter(r.domain for r in rows if r.domain in conn.domain_caps)
    if not counts:
        return rows
    allowed = domain_allowance(conn, dict(counts))
    keep: list[ClaimedRow] = []
    defer: list[int] = []
    for row in rows:
        if row.domain in allowed:
            if allowed[row.domain] > 0:
                allowed[row.domain] -= 1
                keep.append(row)
            else:
                defer.append(row.id)
        else:
            keep.append(row)
    _release(token, defer, not_before=next_minute())
    return keep


# --------------------------------------------------------------------------------------------
# A sending task's work


def campaign_send_work(*, campaign_id: int, time_budget: float | None = None) -> str:
    """Claim and send batches until the campaign is done, paused, or the budget is spent.
    Returns why it stopped: 'done', 'idle' (only deferred rows left), 'stopped', 'budget',
    'warmup', 'outage', 'lost'. With NFM_COUNT_QUERIES=1 (bench/send.py) the SQL statements
    it ran are added up in the shared cache."""
    if time_budget is None:
        time_budget = send_time_budget()
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
        _incr(f"nfm:bench:queries:{campaign_id}", count[0], timeout=86400)


def _running(campaign_id: int) -> bool:
    status = Campaign.objects.filter(pk=campaign_id).values_list("status", flat=True).first()
    return status == Campaign.Status.RUNNING


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
    lease = Lease(campaign_id=campaign_id).acquire()
    try:
        while time.monotonic() - started < time_budget:
            if not _running(campaign_id):
                return "stopped"
            if lease.lost:
                return "lost"
            limit = BATCH_SIZE
            if campaign.connection is not None:
                limit = warmup_reserve(campaign.connection, limit)
                if limit == 0:
                    Campaign.objects.filter(pk=campaign_id).update(
                        status_reason="Warm-up: today's cap is reached; sending resumes "
                        "tomorrow (UTC)."
                    )
                    return "warmup"
            rows = claim_batch(campaign=campaign, lease=lease, limit=limit)
            if campaign.connection is not None and len(rows) < limit:
                warmup_reserve(campaign.connection, len(rows) - limit)  # give back the unused
            rows = _apply_domain_caps(campaign, lease.token, rows)
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
                    # Pending rows another sender's claim holds locked right now (SKIP LOCKED
                    # passed them): a moment's pause, not a spin of queries.
                    time.sleep(0.05)
                    continue
                return "idle"
            campaign.consecutive_failures = Campaign.objects.filter(pk=campaign_id).values_list(
                "consecutive_failures", flat=True
            )[0]
            result = send_batch(
                campaign=campaign, factory=factory, transport=transport, lease=lease, rows=rows
            )
            _after_batch(campaign, result)
            transport.after_batch()
            if result.stopped:
                return "stopped"
            if result.outage:
                return "outage"
            if result.setup:
                return "stopped"
            if result.interrupted:
                return "lost" if lease.lost else "stopped"
        return "budget"
    finally:
        transport.close()
        lease.release()


def _after_batch(campaign: Campaign, result: BatchResult) -> None:
    if result.any_success:
        Campaign.objects.filter(pk=campaign.pk).update(
            consecutive_failures=result.trailing_failures
        )
        Campaign.objects.filter(pk=campaign.pk, connection_down_since__isnull=False).update(
            connection_down_since=None, status_reason=""
        )
    elif result.trailing_failures:
        Campaign.objects.filter(pk=campaign.pk).update(
            consecutive_failures=F("consecutive_failures") + result.trailing_failures
        )
    if result.outage:
        _note_outage(campaign, result.outage)
    if result.setup:
        _pause(
            campaign,
            f"Paused: the sending connection needs a fix before anything can go out. "
            f"{result.setup} Nothing was sent or lost; resume once it is fixed.",
        )
    streak, status = Campaign.objects.filter(pk=campaign.pk).values_list(
        "consecutive_failures", "status"
    )[0]
    if streak >= campaign.max_consecutive_failures and status == Campaign.Status.RUNNING:
        _pause(
            campaign,
            f"Paused automatically after {streak} consecutive failures. "
            f"Last error: {result.last_error}",
        )


def _note_outage(campaign: Campaign, why: str) -> None:
    now = timezone.now()
    Campaign.objects.filter(pk=campaign.pk, connection_down_since__isnull=True).update(
        connection_down_since=now
    )
    since = Campaign.objects.filter(pk=campaign.pk).values_list("connection_down_since", flat=True)[
        0
    ]
    if since is None:
        return  # another sender got through meanwhile and cleared it: the outage is over
    local = timezone.localtime(since)
    Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.RUNNING).update(
        status_reason=f"Waiting for the sending server since {local:%Y-%m-%d %H:%M:%S %Z}: "
        f"{why} Nothing is lost: every message waits and is retried."
    )
    if now - since >= timedelta(minutes=outage_pause_minutes()):
        _pause(
            campaign,
            f"Paused automatically: the sending server has been unreachable since "
            f"{local:%Y-%m-%d %H:%M %Z} ({why}). Resume once it is back; nothing was lost.",
        )


def _pause(campaign: Campaign, reason: str) -> None:
    fresh = Campaign.objects.get(pk=campaign.pk)
    try:
        campaign_transition(campaign=fresh, to=Campaign.Status.PAUSED, reason=reason)
    except CampaignTransitionError:
        log.info("campaign %s already left running", campaign.pk)


def campaign_maybe_finish(*, campaign_id: int) -> bool:
    """Running -> finished once no row is pending, claimed, sending or unknown."""
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
    except CampaignTransitionError:
        return False  # another sender finished it a moment ago
    return True
