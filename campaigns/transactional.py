"""Transactional messages: one template to one recipient, now (an order confirmation, a
password reset), through the same compile pipeline, connections, suppression check and ledger
as campaigns.

Each template has one hidden campaign of kind ``transactional`` (made on first use, never
listed with the campaigns, final from the start so no dispatcher or sender of campaigns ever
touches it); every message is a Delivery row of it, so events, tracking, reports and webhooks
work unchanged. The row carries the caller's idempotency key (unique per template: a replayed
request returns the first message and sends nothing) and the data merged into the template.

Sending is a task on its own Celery queue (``CELERY_TRANSACTIONAL_QUEUE``), so a message is
never queued behind a running campaign's sending tasks. It follows the ledger's rules: the row
is marked ``sending`` under a lease (the pipeline's ``Lease``) before the handoff and its
outcome written fenced by that lease's token; a connection lost after the body went out makes
it ``unknown``, never a blind resend; a suppressed address is ``skipped`` at sending time.
"""

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.db import IntegrityError, transaction
from django.db import connection as db
from django.utils import timezone

from analytics.ingest import ingest_facts
from analytics.models import Link
from subscribers.emails import EmailError, email_normalize
from subscribers.models import Subscriber, email_hash
from templates_app.fields import recipient_context, recipient_contexts
from templates_app.models import Template
from templates_app.rendering import compile_version
from webhooks import emit as webhooks_emit

from .messages import MessageFactory
from .models import Campaign, CampaignTransitionError, Delivery, SandboxMessage, SendingConnection
from .pipeline import (
    BACKOFF_SECONDS,
    MAX_ATTEMPTS,
    ClaimedRow,
    HandoffUnknown,
    Lease,
    Transport,
    _accepted_fact,
    _bounce_fact,
    _classify,
    _send_with_reconnect,
)
from .smtp_connect import ConnectionDown, SetupError

log = logging.getLogger(__name__)

MAX_DATA_BYTES = 64 * 1024


class TransactionalError(ValueError):
    """The request cannot be sent as given: the message says why (and ``field`` where)."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


@dataclass
class TransactionalResult:
    delivery: Delivery
    created: bool  # False: the idempotency key was used before; nothing new was sent


def transactional_campaign(
    *, template: Template, connection: SendingConnection | None = None
) -> Campaign:
    """The template's hidden campaign, made on first use (race-safe: one per template)."""
    found = Campaign.objects.filter(kind=Campaign.Kind.TRANSACTIONAL, template=template).first()
    if found is None:
        try:
            with transaction.atomic():
                found = Campaign.objects.create(
                    kind=Campaign.Kind.TRANSACTIONAL,
                    name=f"Transactional: {template.name}"[:200],
                    template=template,
                    # Final from the start: campaign dispatchers, senders and transitions
                    # leave it alone; its deliveries are sent one by one below.
                    status=Campaign.Status.FINISHED,
                    connection=connection,
                    started_at=timezone.now(),
                )
        except IntegrityError:
            found = Campaign.objects.get(kind=Campaign.Kind.TRANSACTIONAL, template=template)
    if connection is not None and found.connection_id != connection.pk:
        Campaign.objects.filter(pk=found.pk).update(connection=connection)
        found.connection = connection
    return found


def _check_data(data: Any) -> dict:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TransactionalError("data must be a JSON object of merge values.", "data")
    try:
        size = len(json.dumps(data))
    except (TypeError, ValueError):
        raise TransactionalError("data must be plain JSON.", "data") from None
    if size > MAX_DATA_BYTES:
        raise TransactionalError(f"data is larger than {MAX_DATA_BYTES} bytes.", "data")
    return data


def send_transactional(
    *,
    template: Template,
    to_email: str,
    data: dict | None = None,
    idempotency_key: str = "",
    connection: SendingConnection | None = None,
) -> TransactionalResult:
    """Record one message to ``to_email`` and queue it on the transactional queue. With an
    ``idempotency_key`` used before for this template, returns that message (created False)."""
    try:
        email = email_normalize(to_email)
    except EmailError as exc:
        raise TransactionalError(str(exc), "to") from None
    data = _check_data(data)
    key = (idempotency_key or "").strip()
    if len(key) > 200:
        raise TransactionalError("The idempotency key is longer than 200 characters.", "key")
    if not template.versions.exists():
        raise TransactionalError("The template has no saved version yet.", "template")
    campaign = transactional_campaign(template=template, connection=connection)
    with transaction.atomic(), db.cursor() as cursor:
        cursor.execute(
            "INSERT INTO campaigns_delivery (campaign_id, subscriber_id, email, email_hash, "
            "domain, status, claim_token, attempts, message_id, error, created_at, "
            "idempotency_key, data) VALUES (%s, NULL, %s, %s, %s, 'pending', '', 0, '', '', "
            "now(), %s, %s) ON CONFLICT (campaign_id, idempotency_key) "
            "WHERE idempotency_key <> '' DO NOTHING RETURNING id",
            [
                campaign.pk,
                email,
                email_hash(email),
                email.rpartition("@")[2],
                key,
                json.dumps(data),
            ],
        )
        row = cursor.fetchone()
        if row is None:  # the key was used before: that message, untouched
            existing = Delivery.objects.get(campaign=campaign, idempotency_key=key)
            return TransactionalResult(existing, False)
        delivery_id = row[0]
        transaction.on_commit(lambda: transactional_send.delay(delivery_id))
    return TransactionalResult(Delivery.objects.get(pk=delivery_id), True)


# --- sending ----------------------------------------------------------------------------------

_CLAIM_SQL = """
UPDATE campaigns_delivery d SET
  status = CASE WHEN EXISTS (SELECT 1 FROM subscribers_suppression p
                             WHERE p.email_hash = d.email_hash) THEN 'skipped' ELSE 'sending' END,
  error = CASE WHEN EXISTS (SELECT 1 FROM subscribers_suppression p
                            WHERE p.email_hash = d.email_hash)
          THEN 'Address suppressed at sending time.' ELSE d.error END,
  claim_token = %(token)s, claimed_at = now(), attempts = d.attempts + 1,
  message_id = %(message_id)s
WHERE d.id = %(id)s AND d.status = 'pending' AND (d.not_before IS NULL OR d.not_before <= now())
  AND EXISTS (SELECT 1 FROM campaigns_sendlease l WHERE l.token = %(token)s
              AND l.expires_at > now())
RETURNING d.status
"""

_OUTCOME_SQL = """
UPDATE campaigns_delivery SET status = %(status)s, sent_at = %(sent_at)s, error = %(error)s,
  message_id = COALESCE(NULLIF(%(message_id)s, ''), message_id), not_before = %(not_before)s,
  attempts = greatest(attempts + %(attempts_adjust)s, 0)
WHERE id = %(id)s AND claim_token = %(token)s AND status = 'sending'
"""


def _ensure_links(campaign: Campaign, factory_version) -> None:
    """Tracked links of the version being sent: Link rows by index, made once (a later version
    with other URLs gets its new ones; indexes already there keep theirs)."""
    compiled = compile_version(factory_version, track_links=True)
    existing = dict(Link.objects.filter(campaign=campaign).values_list("index", "url"))
    missing = [
        Link(campaign=campaign, index=i, url=url)
        for i, url in enumerate(compiled.links)
        if i not in existing
    ]
    if missing:
        Link.objects.bulk_create(missing, ignore_conflicts=True)
    changed = [i for i, url in enumerate(compiled.links) if i in existing and existing[i] != url]
    for i in changed:
        Link.objects.filter(campaign=campaign, index=i).update(url=compiled.links[i])


def _merge_values(delivery: Delivery) -> tuple[int, dict]:
    """The recipient's values (a subscriber's when the address is one) with the message's data
    beside them; the subscriber's own fields win over a data key of the same name."""
    subscriber_id = (
        Subscriber.objects.filter(email__iexact=delivery.email).values_list("pk", flat=True).first()
    )
    recipient = (
        recipient_contexts([subscriber_id]).get(subscriber_id) if subscriber_id else None
    ) or recipient_context(email=delivery.email)
    return subscriber_id or 0, {**(delivery.data or {}), **recipient}


def transactional_deliver(*, delivery_id: int) -> str:
    """Send one transactional delivery; returns what became of it (sent, skipped, failed,
    retry, unknown, or why nothing was done)."""
    delivery = (
        Delivery.objects.select_related("campaign", "campaign__connection", "campaign__template")
        .filter(pk=delivery_id, campaign__kind=Campaign.Kind.TRANSACTIONAL)
        .first()
    )
    if delivery is None or delivery.status != Delivery.Status.PENDING:
        return "not pending"
    campaign = delivery.campaign
    version = campaign.template.versions.order_by("-number").first() if campaign.template else None
    if campaign.track_links and version is not None:
        _ensure_links(campaign, version)  # the factory finds them by index
    try:
        factory = MessageFactory(campaign)
    except CampaignTransitionError as exc:
        Delivery.objects.filter(pk=delivery_id, status="pending").update(
            status=Delivery.Status.FAILED, error=str(exc)
        )
        return "failed"
    subscriber_id, values = _merge_values(delivery)
    built = factory.build(
        delivery_id=delivery.pk,
        subscriber_id=subscriber_id,
        email=delivery.email,
        recipient=values,
    )
    lease = Lease(campaign_id=campaign.pk).acquire()
    transport = Transport(campaign, factory)
    try:
        with db.cursor() as cursor:
            cursor.execute(
                _CLAIM_SQL,
                {"id": delivery.pk, "token": lease.token, "message_id": built.message_id},
            )
            claimed = cursor.fetchone()
        if claimed is None:
            return "not pending"
        if claimed[0] == Delivery.Status.SKIPPED:
            return "skipped"
        return _hand_off(delivery, built, factory, transport, lease)
    finally:
        transport.close()
        lease.release()


def _write(delivery_id: int, token: str, **outcome: Any) -> None:
    params = {
        "sent_at": None,
        "error": "",
        "message_id": "",
        "not_before": None,
        "attempts_adjust": 0,
        **outcome,
        "id": delivery_id,
        "token": token,
    }
    with db.cursor() as cursor:
        cursor.execute(_OUTCOME_SQL, params)
        if cursor.rowcount != 1:
            log.warning("transactional delivery %s was taken back before its outcome", delivery_id)


def _hand_off(delivery, built, factory, transport: Transport, lease: Lease) -> str:
    row = ClaimedRow(delivery.pk, 0, delivery.email, delivery.domain)
    token = lease.token
    if transport.sandbox:
        with transaction.atomic():
            _write(delivery.pk, token, status="sent", sent_at=timezone.now())
            SandboxMessage.objects.create(
                campaign=delivery.campaign,
                delivery_id=delivery.pk,
                to=built.to,
                subject=built.subject,
                html=built.html,
                text=built.text,
                headers=built.headers,
                raw=factory.signed_raw(built).decode("utf-8", errors="replace"),
            )
        webhooks_emit.deliveries_sent([delivery.pk])
        return "sent"
    try:
        lease.check()
        message_id = _send_with_reconnect(transport, built)
    except HandoffUnknown as exc:
        _write(delivery.pk, token, status="unknown", error=str(exc))
        return "unknown"
    except (ConnectionDown, SetupError) as exc:
        # Nothing went out: try again later, no attempt counted.
        wait = BACKOFF_SECONDS[0]
        _write(
            delivery.pk,
            token,
            status="pending",
            error=f"Waiting for the server: {exc}",
            not_before=timezone.now() + timedelta(seconds=wait),
            attempts_adjust=-1,
        )
        transactional_send.apply_async((delivery.pk,), countdown=wait)
        return "retry"
    except Exception as exc:  # any backend's answer: classified like the pipeline's
        refusal = _classify(exc)
        attempts = delivery.attempts + 1
        if refusal.transient and attempts < MAX_ATTEMPTS:
            wait = BACKOFF_SECONDS[min(attempts - 1, len(BACKOFF_SECONDS) - 1)]
            _write(
                delivery.pk,
                token,
                status="pending",
                error=f"Retrying (attempt {attempts} of {MAX_ATTEMPTS}): {refusal.message}",
                not_before=timezone.now() + timedelta(seconds=wait),
            )
            transactional_send.apply_async((delivery.pk,), countdown=wait)
            return "retry"
        _write(delivery.pk, token, status="failed", error=refusal.message)
        if refusal.smtp_code and refusal.smtp_code >= 500:
            ingest_facts([_bounce_fact(row, built, refusal)])
        return "failed"
    _write(delivery.pk, token, status="sent", message_id=message_id, sent_at=timezone.now())
    if transport.is_smtp:
        ingest_facts([_accepted_fact(row, message_id)])
    webhooks_emit.deliveries_sent([delivery.pk])
    return "sent"


@shared_task(name="campaigns.transactional.transactional_send")
def transactional_send(delivery_id: int) -> str:
    """On the transactional queue (settings.CELERY_TASK_ROUTES)."""
    return transactional_deliver(delivery_id=delivery_id)
