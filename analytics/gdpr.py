"""What analytics holds about one person: GDPR export, erasure and timeline hooks
(registered in AnalyticsConfig.ready())."""

from collections.abc import Mapping
from typing import Any

from django.db.models import OuterRef, Q, Subquery

from campaigns.models import Campaign
from core.erasure import scrub
from subscribers.models import Subscriber, email_hash

from .classification import PROXY, SCANNER
from .models import Classification, Event, Link, SubscriberEngagement
from .services import leaving_description

TIMELINE_LIMIT = 200
# Delivered / deferred / unknown are the ESP's bookkeeping; the campaign entry already says it
# was sent. The timeline shows what the person (or their mail system) did.
TIMELINE_KINDS = [
    Event.Kind.OPENED,
    Event.Kind.CLICKED,
    Event.Kind.BOUNCED,
    Event.Kind.REJECTED,
    Event.Kind.COMPLAINED,
    Event.Kind.UNSUBSCRIBED,
    Event.Kind.RESUBSCRIBED,
    Event.Kind.FAILED,
]


def _iso(value):
    return value.isoformat() if value else None


def _events_of(subscriber: Subscriber, address: str):
    """Their events: tracked ones carry the subscriber id, ESP feedback that could not be tied
    to a delivery only the address hash (both columns are indexed)."""
    return Event.objects.filter(Q(subscriber_id=subscriber.pk) | Q(email_hash=email_hash(address)))


def _link_url():
    return Subquery(Link.objects.filter(pk=OuterRef("link_id")).values("url")[:1])


def events_export(subscriber: Subscriber) -> list[dict]:
    """Every event about them with the raw facts recorded (one query)."""
    labels = dict(Classification.choices)
    rows = (
        _events_of(subscriber, subscriber.email)
        .annotate(link_url=_link_url())
        .order_by("occurred_at", "id")
        .values(
            "kind",
            "occurred_at",
            "classification",
            "ip",
            "user_agent",
            "url",
            "link_url",
            "bounce_type",
            "reason",
        )
    )
    return [
        {
            "kind": row["kind"],
            "at": _iso(row["occurred_at"]),
            "classification": labels.get(row["classification"], "") or None,
            "ip": row["ip"],
            "user_agent": row["user_agent"],
            "link_url": row["url"] or row["link_url"],
            "bounce_type": row["bounce_type"] or None,
            "reason": row["reason"],
        }
        for row in rows
    ]


def engagement_export(subscriber: Subscriber) -> dict | None:
    row = (
        SubscriberEngagement.objects.filter(subscriber=subscriber)
        .values(
            "score",
            "human_opens",
            "human_clicks",
            "last_sent_at",
            "last_human_open_at",
            "last_human_click_at",
        )
        .first()
    )
    if row is None:
        return None
    return {key: _iso(value) if key.startswith("last_") else value for key, value in row.items()}


def events_erase(subscriber: Subscriber) -> None:
    """Events stay (campaign reports count them, the classification says how) but lose the
    network facts, the ESP's raw payload and any quoted address."""
    address = subscriber.erasing_address
    _events_of(subscriber, address).update(
        ip=None,
        user_agent="",
        payload=None,
        reason=scrub("reason", address),
        url=scrub("url", address),
    )


_MACHINE = {
    PROXY: "by a privacy proxy (e.g. Apple Mail Privacy Protection), not counted as human",
    SCANNER: "by a security scanner, not counted as human",
}


def _is_leaving(row: Mapping[str, Any]) -> bool:
    """A leave or come-back recorded by the preference views (an ESP's has its name in esp;
    erasure empties the payload, and the plain wording is used then)."""
    return (
        row["kind"] in (Event.Kind.UNSUBSCRIBED, Event.Kind.RESUBSCRIBED)
        and not row["esp"]
        and isinstance(row["payload"], dict)
        and "what" in row["payload"]
    )


def events_timeline(subscriber: Subscriber) -> list[dict]:
    """The latest opens, clicks, bounces, complaints and unsubscribes, saying which opens and
    clicks were machines. Two queries: the events, then their campaigns' names."""
    rows = list(
        Event.objects.filter(subscriber_id=subscriber.pk, kind__in=TIMELINE_KINDS)
        .annotate(link_url=_link_url())
        .order_by("-occurred_at", "-id")
        .values(
            "kind",
            "occurred_at",
            "campaign_id",
            "classification",
            "prefetch",
            "bounce_type",
            "reason",
            "url",
            "link_url",
            "esp",
            "payload",
        )[:TIMELINE_LIMIT]
    )
    names = dict(
        Campaign.objects.filter(
            pk__in={r["campaign_id"] for r in rows if r["campaign_id"]}
        ).values_list("id", "name")
    )
    items = []
    for row in rows:
        name = names.get(row["campaign_id"]) if row["campaign_id"] is not None else None
        about = f" “{name}”" if name else ""
        kind = row["kind"]
        if kind == Event.Kind.OPENED:
            text = f"Opened{about}"
        elif kind == Event.Kind.CLICKED:
            url = row["url"] or row["link_url"] or "a link"
            text = f"Clicked {url}" + (f" in{about}" if about else "")
        elif kind == Event.Kind.BOUNCED:
            kind_label = f" ({row['bounce_type']})" if row["bounce_type"] else ""
            text = f"Bounced{kind_label}{about}"
        elif kind == Event.Kind.REJECTED:
            text = f"Rejected by the sending service{about}"
        elif kind == Event.Kind.COMPLAINED:
            text = f"Marked{about or ' a campaign'} as spam"
        elif _is_leaving(row):
            # The recipient's own change (preference center, unsubscribe link): its own words.
            items.append(
                {
                    "at": row["occurred_at"],
                    "kind": kind,
                    "text": leaving_description(
                        kind, row["payload"] or {}, campaign_name=name or ""
                    ),
                }
            )
            continue
        elif kind == Event.Kind.UNSUBSCRIBED:
            text = f"Unsubscribed through{about or ' a campaign'}"
        elif kind == Event.Kind.RESUBSCRIBED:
            text = f"Subscribed again{about}"
        else:
            text = f"Delivery failed{about}"
        if kind in (Event.Kind.OPENED, Event.Kind.CLICKED):
            machine = _MACHINE.get(row["classification"])
            if machine:
                text += f" — {machine}"
            elif row["prefetch"]:
                text += " — a link prefetch, not counted as human"
        elif row["reason"]:
            text += f": {row['reason'][:200]}"
        items.append({"at": row["occurred_at"], "kind": kind, "text": text})
    return items
