"""Reads on the audience."""

from collections.abc import Callable

from .models import Subscriber

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
