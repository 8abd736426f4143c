"""Reads on the audience."""

from collections.abc import Callable

from django.db.models import CharField, Exists, Func, OuterRef, Q, QuerySet
from django.db.models.functions import Now

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
