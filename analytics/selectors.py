"""Reads of the analytics capability: engagement conditions for segments, timelines."""

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from .classification import HUMAN
from .models import Event, SubscriberEngagement

ENGAGEMENT_KINDS = (
    "opened",
    "clicked",
    "engaged",
    "not_opened",
    "not_clicked",
    "not_engaged",
)


def engagement_q(kind: str, days: int | None, campaign_id: int | None = None) -> Q:
    """A Q on Subscriber: human opens / clicks (never proxies or scanners) in the last
    ``days`` days (None: ever), optionally of one campaign. ``not_*`` kinds are the
    complement (``not_opened`` with days=None: never opened).

    For segment rules (subscribers.segments): e.g. ``{"engagement": "not_engaged",
    "days": 180}`` -> ``engagement_q("not_engaged", 180)``.
    """
    if kind not in ENGAGEMENT_KINDS:
        raise ValueError(f"Unknown engagement condition {kind!r}: one of {ENGAGEMENT_KINDS}")
    if days is not None and (not isinstance(days, int) or days <= 0):
        raise ValueError(f"days must be a positive whole number, not {days!r}")
    negate = kind.startswith("not_")
    base = kind.removeprefix("not_")
    # No window: "ever" (the first email anyone could have opened is after the epoch).
    since = (
        timezone.now() - timedelta(days=days)
        if days
        else timezone.make_aware(timezone.datetime(1970, 1, 1))
    )
    if campaign_id is None:
        # The per-subscriber rollup: one indexed lookup, not a scan of the events.
        conditions = {
            "opened": Q(last_human_open_at__gte=since),
            "clicked": Q(last_human_click_at__gte=since),
            "engaged": Q(last_human_open_at__gte=since) | Q(last_human_click_at__gte=since),
        }[base]
        ids = SubscriberEngagement.objects.filter(conditions).values("subscriber_id")
    else:
        kinds = {"opened": ["opened"], "clicked": ["clicked"], "engaged": ["opened", "clicked"]}
        ids = Event.objects.filter(
            campaign_id=campaign_id,
            kind__in=kinds[base],
            classification=HUMAN,
            occurred_at__gte=since,
            subscriber_id__isnull=False,
        ).values("subscriber_id")
    q = Q(pk__in=ids)
    return ~q if negate else q


def subscriber_timeline(subscriber_id: int, *, limit: int = 100) -> list[dict]:
    """A subscriber's deliveries and events, newest first (for the subscriber page)."""
    from campaigns.models import Delivery

    deliveries = [
        {
            "at": d["sent_at"] or d["created_at"],
            "what": f"Sent: {d['campaign__name']}"
            if d["sent_at"]
            else f"{d['status'].capitalize()}: {d['campaign__name']}",
            "kind": "sent",
            "campaign_id": d["campaign_id"],
            "detail": d["status"],
        }
        for d in Delivery.objects.filter(subscriber_id=subscriber_id)
        .order_by("-id")
        .values("sent_at", "created_at", "status", "campaign_id", "campaign__name")[:limit]
    ]
    leaving = (Event.Kind.UNSUBSCRIBED, Event.Kind.RESUBSCRIBED)
    events = [
        {
            "at": e["occurred_at"],
            # A leave or come-back from the preference views says what it was (a pause, some
            # topics, everything) in its reason; the kind alone would call a pause "Unsubscribed".
            "what": (
                e["reason"]
                if e["kind"] in leaving and not e["esp"] and e["reason"]
                else e["kind"].capitalize()
            ),
            "kind": e["kind"],
            "campaign_id": e["campaign_id"],
            "detail": (
                ""
                if e["kind"] in leaving and not e["esp"]
                else " ".join(filter(None, [e["classification"], e["bounce_type"], e["reason"]]))
            ),
        }
        for e in Event.objects.filter(subscriber_id=subscriber_id)
        .order_by("-occurred_at")
        .values(
            "occurred_at", "kind", "campaign_id", "classification", "bounce_type", "reason", "esp"
        )[:limit]
    ]
    return sorted(deliveries + events, key=lambda row: row["at"], reverse=True)[:limit]


def engagement_condition_q(condition: dict) -> Q:
    """The segment rule compiler of ``{"field": "engagement", "op": <kind>, "value": ...}``
    where value is a number of days, or {"days": N, "campaign": <campaign id>}; days may be
    omitted for "ever" (e.g. op "not_opened" alone: never opened). Human engagement only."""
    from subscribers.segments import SegmentRuleError

    op, value = condition.get("op"), condition.get("value")
    if op not in ENGAGEMENT_KINDS:
        raise SegmentRuleError(
            f"An engagement condition (analytics: human opens and clicks) needs op set to one "
            f"of {', '.join(ENGAGEMENT_KINDS)}, not {op!r}."
        )
    options = value if isinstance(value, dict) else {"days": value}
    days, campaign = options.get("days"), options.get("campaign")
    try:
        if isinstance(days, str) and days.isdigit():
            days = int(days)
        if campaign is not None:
            campaign = int(campaign)
        return engagement_q(op, days, campaign_id=campaign)
    except (TypeError, ValueError) as exc:
        raise SegmentRuleError(f"{exc} in {condition!r}") from None
