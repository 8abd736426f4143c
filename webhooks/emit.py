"""Writing webhook events: set-based, by the code that writes the facts, at no cost when no
endpoint listens.

Each function takes the ids of facts just written (deliveries marked sent, events ingested,
subscribers changed) and runs at most ONE ``INSERT ... SELECT`` into the outbox, joined to the
endpoints that subscribe to the event type, in the caller's transaction: the outbox row commits
with the fact or not at all. Before that, a cached "does any endpoint want X" answer (one cache
read, no SQL) skips the statement entirely, so the sending loop and the tracking flusher pay
nothing for webhooks nobody subscribed to.

The webhook-id (``msg_id``) is derived from the fact (``md5(type:key)``), so an event written
twice (a replayed ingestion, a retried task) is one outbox row per endpoint (ON CONFLICT DO
NOTHING), and every endpoint gets the same id for the same event.
"""

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from .models import MACHINE_TYPES, WebhookEndpoint

log = logging.getLogger(__name__)

WANTED_KEY = "nfm:webhooks:wanted"
WANTED_SECONDS = 60
KICK_KEY = "nfm:webhooks:kick"

_INSERT = (
    "INSERT INTO webhooks_webhookmessage (endpoint_id, msg_id, event_type, payload) "
    "SELECT e.id, 'msg_' || md5({type} || ':' || {key}), {type}, "
    "jsonb_build_object('type', {type}, 'timestamp', "
    "to_char({at} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'data', {data}) "
)
_ENDPOINTS = (
    "JOIN webhooks_webhookendpoint e ON e.enabled AND (e.event_types ? {type} OR "
    "(e.include_machine AND {type} IN ('open.machine', 'click.machine') "
    "AND e.event_types ? replace({type}, '.machine', '.human')))"
)
_CONFLICT = " ON CONFLICT (endpoint_id, msg_id) DO NOTHING"


def wanted() -> frozenset[str]:
    """Every event type some enabled endpoint wants (machine kinds included), cached in the
    shared cache until an endpoint changes (``wanted_changed``) or for a minute."""
    try:
        value = cache.get(WANTED_KEY)
    except RedisError:  # no cache: ask the database (sending must not stop for it)
        value = None
    if value is None:
        types: set[str] = set()
        for event_types, machine in WebhookEndpoint.objects.filter(enabled=True).values_list(
            "event_types", "include_machine"
        ):
            types.update(event_types)
            if machine:
                types.update(m for m, human in MACHINE_TYPES.items() if human in event_types)
        value = sorted(types)
        try:
            cache.set(WANTED_KEY, value, WANTED_SECONDS)
        except RedisError:
            log.warning("webhooks: the cache is unavailable", exc_info=True)
    return frozenset(value)


def wanted_changed() -> None:
    """An endpoint was created, changed, enabled or disabled: forget the cached answer."""

    def forget() -> None:
        try:
            cache.delete(WANTED_KEY)
        except RedisError:
            log.warning("webhooks: the cache is unavailable", exc_info=True)

    transaction.on_commit(forget)
    forget()


def _kick() -> None:
    """Wake the dispatcher once the outbox rows are committed. One task queued at a time: the
    key is set when one is queued and cleared when it starts, so rows committed after its
    start get a task of their own, and those before are seen by it (beat's tick is the net)."""

    def send() -> None:
        # Never raises into the writer, whose facts are committed: beat's tick is the net.
        try:
            if cache.add(KICK_KEY, 1, timeout=60):
                from .tasks import webhooks_dispatch

                webhooks_dispatch.delay()
        except (RedisError, OperationalError):
            log.warning("webhooks: dispatcher not kicked (beat will pick them up)", exc_info=True)

    transaction.on_commit(send)


kick_if_due = _kick


def _run(sql: str, params: Sequence[Any] | Mapping[str, Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        written = cursor.rowcount
    if written > 0:
        _kick()
    return written


# --- the sending pipeline -------------------------------------------------------------------

_DELIVERY_DATA = (
    "jsonb_build_object('delivery_id', d.id, 'campaign_id', d.campaign_id, "
    "'subscriber_id', d.subscriber_id, 'email', d.email, 'message_id', d.message_id, "
    "'transactional', c.kind = 'transactional', 'campaign', c.name)"
)


def deliveries_sent(delivery_ids: Iterable[int]) -> int:
    """delivery.sent for these deliveries (those really ``sent``): one statement, none when
    no endpoint listens. For the pipeline, once a batch's outcomes are written."""
    if "delivery.sent" not in wanted():
        return 0
    ids = list(delivery_ids)
    if not ids:
        return 0
    kind = "%(type)s"
    sql = (
        _INSERT.format(type=kind, key="d.id::text", at="d.sent_at", data=_DELIVERY_DATA)
        + "FROM campaigns_delivery d JOIN campaigns_campaign c ON c.id = d.campaign_id "
        + _ENDPOINTS.format(type=kind)
        + " WHERE d.id = ANY(%(ids)s) AND d.status = 'sent'"
        + _CONFLICT
    )
    return _run(sql, {"type": "delivery.sent", "ids": ids})


# --- ingestion (tracking flusher, ESP webhooks, bounce mail) --------------------------------

# Event kind -> webhook type ("" when none); opens and clicks by their classification.
_FACT_TYPES = {"bounced": "delivery.bounced", "complained": "delivery.complained"}


def fact_type(kind: str, classification: str) -> str:
    if kind == "opened":
        return "open.human" if classification == "human" else "open.machine"
    if kind == "clicked":
        return "click.human" if classification == "human" else "click.machine"
    return _FACT_TYPES.get(kind, "")


def events_ingested(facts: Iterable[Any]) -> int:
    """Webhook events for facts ingestion has just stored (``analytics.ingest.Fact``: opens,
    clicks, bounces, complaints), in ingestion's transaction. Only each event's uid and type
    go over, and the row written is the smallest: its body is built from the stored Event by
    the dispatcher (webhooks.dispatch), off the flusher's path."""
    want = wanted()
    if not want:
        return 0
    uids, types = [], []
    for f in facts:
        kind = fact_type(f.kind, f.classification)
        if kind and kind in want:
            uids.append(f.uid)
            types.append(kind)
    if not uids:
        return 0
    sql = (
        "INSERT INTO webhooks_webhookmessage (endpoint_id, msg_id, event_type, ref) "
        "SELECT e.id, 'msg_' || md5(v.type || ':' || v.uid), v.type, v.uid "
        "FROM unnest(%s::text[], %s::text[]) AS v(uid, type) "
        + _ENDPOINTS.format(type="v.type")
        + _CONFLICT
    )
    return _run(sql, [uids, types])


# The body of an event-backed message, from its Event (and the delivery's address, unless
# the campaign tracks anonymously: then the event names no delivery).
EVENT_PAYLOAD_SQL = (
    "jsonb_build_object('type', m2.event_type, 'timestamp', "
    "to_char(ev.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    "'data', jsonb_strip_nulls(jsonb_build_object('event_id', ev.uid, "
    "'delivery_id', ev.delivery_id, 'campaign_id', ev.campaign_id, "
    "'subscriber_id', ev.subscriber_id, 'email', d.email, "
    "'classification', NULLIF(ev.classification, ''), 'link_id', ev.link_id, 'url', l.url, "
    "'bounce_type', NULLIF(ev.bounce_type, ''), 'reason', CASE WHEN ev.kind IN "
    "('bounced', 'complained') THEN NULLIF(ev.reason, '') END)))"
)


# --- subscribers ----------------------------------------------------------------------------

_SUBSCRIBER_DATA = (
    "jsonb_build_object('subscriber_id', s.id, 'email', s.email, 'first_name', s.first_name, "
    "'last_name', s.last_name, 'status', s.status, 'language', s.language, "
    "'attributes', s.attributes, 'created_at', s.created_at, 'confirmed_at', s.confirmed_at, "
    "'updated_at', s.updated_at)"
)
_ERASED_DATA = "jsonb_build_object('subscriber_id', s.id, 'erased_at', s.erased_at)"


def subscribers_changed(event_type: str, subscriber_ids: Iterable[int]) -> int:
    """subscriber.created / confirmed / updated / unsubscribed / erased for these subscribers,
    as they are now (an erased one carries no personal data). The key includes the row's
    ``updated_at``, so each change is its own event and a replay of one is not."""
    if event_type not in wanted():
        return 0
    ids = list(subscriber_ids)
    if not ids:
        return 0
    erased = event_type == "subscriber.erased"
    kind = "%(type)s"
    sql = (
        _INSERT.format(
            type=kind,
            key="s.id::text || ':' || s.updated_at::text",
            at="s.updated_at",
            data=_ERASED_DATA if erased else _SUBSCRIBER_DATA,
        )
        + "FROM subscribers_subscriber s "
        + _ENDPOINTS.format(type=kind)
        + " WHERE s.id = ANY(%(ids)s)"
        + _CONFLICT
    )
    return _run(sql, {"type": event_type, "ids": ids})


# --- campaigns, forms, alerts: one row each -------------------------------------------------


def campaign_changed(event_type: str, campaign_id: int) -> int:
    """campaign.started / paused / finished (from the one transition function)."""
    if event_type not in wanted():
        return 0
    kind = "%(type)s"
    sql = (
        _INSERT.format(
            type=kind,
            key="c.id::text || ':' || c.updated_at::text",
            at="c.updated_at",
            data="jsonb_build_object('campaign_id', c.id, 'name', c.name, 'status', c.status, "
            "'reason', c.status_reason, 'total', c.total, 'started_at', c.started_at, "
            "'finished_at', c.finished_at)",
        )
        + "FROM campaigns_campaign c "
        + _ENDPOINTS.format(type=kind)
        + " WHERE c.id = %(id)s AND c.kind <> 'transactional'"
        + _CONFLICT
    )
    return _run(sql, {"type": event_type, "id": campaign_id})


def alert_raised(alert_id: int) -> int:
    """alert.raised: a reputation alert, or an endpoint disabled after repeated failures."""
    if "alert.raised" not in wanted():
        return 0
    kind = "%(type)s"
    sql = (
        _INSERT.format(
            type=kind,
            key="a.id::text || ':' || a.level",
            at="a.created_at",
            data="jsonb_build_object('alert_id', a.id, 'scope', a.scope, 'key', a.key, "
            "'metric', a.metric, 'level', a.level, 'rate', a.rate, 'message', a.message)",
        )
        + "FROM analytics_reputationalert a "
        + _ENDPOINTS.format(type=kind)
        + " WHERE a.id = %(id)s"
        + _CONFLICT
    )
    return _run(sql, {"type": "alert.raised", "id": alert_id})


def form_submitted(signup_id: int) -> int:
    """form.submitted: a visitor sent a signup form (its first step)."""
    if "form.submitted" not in wanted():
        return 0
    kind = "%(type)s"
    sql = (
        _INSERT.format(
            type=kind,
            key="g.id::text",
            at="g.created_at",
            data="jsonb_build_object('signup_id', g.id, 'form_id', g.form_id, "
            "'subscriber_id', g.subscriber_id, 'email', s.email)",
        )
        + "FROM signup_signup g LEFT JOIN subscribers_subscriber s ON s.id = g.subscriber_id "
        + _ENDPOINTS.format(type=kind)
        + " WHERE g.id = %(id)s"
        + _CONFLICT
    )
    return _run(sql, {"type": "form.submitted", "id": signup_id})
