"""Reads on the audience."""

import json
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import CharField, Exists, Func, OuterRef, Q, QuerySet
from django.db.models.functions import Lower, Now

from .models import Subscriber, Suppression

# Later capabilities add their entries to a subscriber's activity timeline by registering a
# function that returns a list of {"at": datetime, "kind": str, "text": str} dicts, e.g. in their
# AppConfig.ready():  subscribers.selectors.TIMELINE_SOURCES.append(deliveries_for_timeline)
TIMELINE_SOURCES: list[Callable[[Subscriber], list[dict]]] = []


def _own_events(subscriber: Subscriber) -> list[dict]:
    items = [
        {
            "at": subscriber.created_at,
            "kind": "joined",
            "text": f"Joined ({subscriber.get_source_display().lower()})",
        }
    ]
    if subscriber.confirmed_at:
        items.append({"at": subscriber.confirmed_at, "kind": "confirmed", "text": "Confirmed"})
    for s in subscriber.subscriptions.select_related("topic"):
        items.append(
            {"at": s.created_at, "kind": "subscribed", "text": f"Subscribed to {s.topic.name}"}
        )
        if s.unsubscribed_at:
            items.append(
                {
                    "at": s.unsubscribed_at,
                    "kind": "unsubscribed",
                    "text": f"Unsubscribed from {s.topic.name}",
                }
            )
    for c in subscriber.consent_records.all():
        items.append(
            {
                "at": c.created_at,
                "kind": "consent",
                "text": f"Consent given ({c.get_where_display()})",
            }
        )
    return items


def subscriber_timeline(subscriber: Subscriber) -> list[dict]:
    """Everything that happened to a subscriber, newest first."""
    items = _own_events(subscriber)
    for source in TIMELINE_SOURCES:
        items.extend(source(subscriber))
    return sorted(items, key=lambda item: item["at"], reverse=True)


class EmailHash(Func):
    """SQL twin of models.email_hash(): SHA-256 hex of the lowercased address."""

    template = "encode(sha256(convert_to(lower(%(expressions)s), 'UTF8')), 'hex')"
    output_field = CharField()


def subscribers_sendable(queryset: QuerySet[Subscriber] | None = None) -> QuerySet[Subscriber]:
    """Who may be mailed now: active, not erased, not paused, and not suppressed.

    The suppression check is by hash, so an erased address that comes back through an import
    or an API call is still blocked. Campaigns snapshot their audience through this.
    """
    queryset = Subscriber.objects.all() if queryset is None else queryset
    return (
        queryset.filter(status=Subscriber.Status.ACTIVE, erased_at__isnull=True)
        .filter(Q(paused_until__isnull=True) | Q(paused_until__lte=Now()))
        .exclude(Exists(Suppression.objects.filter(email_hash=EmailHash(OuterRef("email")))))
    )


def subscribers_with_email(email: str) -> QuerySet[Subscriber]:
    """Subscribers whose address is ``email``, looked up through the lower(email) unique index
    (a plain ``email=`` filter cannot use it and scans the table)."""
    return Subscriber.objects.alias(email_key=Lower("email")).filter(
        email_key=email.strip().lower()
    )


@dataclass(frozen=True)
class ListTotal:
    count: int
    estimated: bool  # shown as "about N"


def _planned_rows(queryset: QuerySet) -> int:
    sql, params = queryset.values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def _table_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [Subscriber._meta.db_table],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else -1


def subscribers_total(queryset: QuerySet[Subscriber], *, filtered: bool) -> ListTotal:
    """How many subscribers a list shows, without a COUNT(*) over a large table.

    Up to SUBSCRIBER_EXACT_COUNT_LIMIT the count is exact (a bounded count reads at most that
    many rows); past it the planner's figure stands in: pg_class.reltuples for the whole
    table, EXPLAIN's row estimate for a filtered set. Never below the bound that was counted.
    """
    limit = settings.SUBSCRIBER_EXACT_COUNT_LIMIT
    counted = queryset.order_by()[: limit + 1].count()
    if counted <= limit:
        return ListTotal(counted, estimated=False)
    estimate = _planned_rows(queryset) if filtered else _table_rows()
    return ListTotal(max(estimate, counted), estimated=True)
