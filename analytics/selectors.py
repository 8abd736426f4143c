"""Reads of the analytics capability: engagement conditions for segments, timelines."""

import datetime as dt
from datetime import timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from campaigns.models import Delivery
from subscribers.segments import SegmentRuleError

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
        else timezone.make_aware(dt.datetime(1970, 1, 1))
    )
    if campaign_id is None:
        # The per-subscriber rollup: one indexed lookup, not a scan of the events.
        conditions = {
            "opened": Q(last_human_open_at__gte=since),
            "clicked": Q(last_human_click_at__gte=since),
            "engaged": Q(last_human_open_at__gte=since) | Q(last_human_click_at__gte=since),
        }[base]
        ids: QuerySet[Any, Any] = SubscriberEngagement.objects.filter(conditions).values(
            "subscriber_id"
        )
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


def subscriber_timeline(
    subscriber_id: int, *, limit: int = 100, before: dt.datetime | None = None
) -> list[dict]:
    """A subscriber's deliveries and events, newest first (for the subscriber page): at most
    ``limit`` of them, all older than ``before`` when given (the next page: keyset on time,
    through the (subscriber, sent_at) and (subscriber, occurred_at) indexes, never OFFSET)."""
    sent = Delivery.objects.filter(subscriber_id=subscriber_id)
    happened = Event.objects.filter(subscriber_id=subscriber_id)
    if before is not None:
        sent = sent.filter(Q(sent_at__lt=before) | Q(sent_at__isnull=True, created_at__lt=before))
        happened = happened.filter(occurred_at__lt=before)
    deliveries: list[dict[str, Any]] = [
        {
            "at": d["sent_at"] or d["created_at"],
            "what": f"Sent: {d['campaign__name']}"
            if d["sent_at"]
            else f"{d['status'].capitalize()}: {d['campaign__name']}",
            "kind": "sent",
            "campaign_id": d["campaign_id"],
            "detail": d["status"],
        }
        for d in sent.order_by("-id").values(
            "sent_at", "created_at", "status", "campaign_id", "campaign__name"
        )[:limit]
    ]
    leaving = (Event.Kind.UNSUBSCRIBED, Event.Kind.RESUBSCRIBED)
    events: list[dict[str, Any]] = [
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
        for e in happened.order_by("-occurred_at").values(
            "occurred_at", "kind", "campaign_id", "classification", "bounce_type", "reason", "esp"
        )[:limit]
    ]
    return sorted(deliveries + events, key=lambda row: row["at"], reverse=True)[:limit]


def engagement_condition_q(condition: dict) -> Q:
    """The segment rule compiler of ``{"field": "engagement", "op": <kind>, "value": ...}``
    where value is a number of days, or {"days": N, "campaign": <campaign id>}; days may be
    omitted for "ever" (e.g. op "not_opened" alone: never opened). Human engagement only."""
    op, value = condition.get("op"), condition.get("value")
    if op not in ENGAGEMENT_KINDS:
        raise SegmentRuleError(
            f"An engagement condition (analytics: human opens and clicks) needs op set to one "
            f"of {', '.join(ENGAGEMENT_KINDS)}, not {op!r}."
        )
    options = value if isinstance(value, dict) else {"days": value}
    days, campaign = options.get("days"), options.get("campaign")
    try:
        if days == "":
            days = None  # the builder's empty box: ever
        if isinstance(days, str) and days.isdigit():
            days = int(days)
        if campaign is not None:
            campaign = int(campaign)
        return engagement_q(op, days, campaign_id=campaign)
    except (TypeError, ValueError) as exc:
        raise SegmentRuleError(f"{exc} in {condition!r}") from None


# --- the engagement numbers and dates, for segment rules ----------------------------------------

ENGAGEMENT_NUMBERS = {
    "human_opens": "human_opens",
    "human_clicks": "human_clicks",
    "engagement_score": "score",
}
NUMBER_OPS = {
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _rule_error(message: str) -> SegmentRuleError:
    return SegmentRuleError(message)


def engagement_number_q(condition: dict) -> Q:
    """``{"field": "human_opens" | "human_clicks" | "engagement_score", "op": "gte", "value": 3}``
    as a Q on Subscriber, from the per-subscriber rollup (one indexed subquery).

    A subscriber with no engagement row has 0 of everything, so a comparison that 0 satisfies
    ("fewer than 3 opens") is compiled as "not among the rows that fail it": they are included.
    """
    # A segment's rules are JSON: anything may be in them until checked here.
    field: Any = condition.get("field")
    op: Any = condition.get("op")
    value: Any = condition.get("value")
    column = ENGAGEMENT_NUMBERS.get(field)
    if column is None or op not in NUMBER_OPS:
        raise _rule_error(
            f"{field} compares with one of {', '.join(NUMBER_OPS)}, not {op!r} in {condition!r}"
        )
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError
    except (TypeError, ValueError):
        raise _rule_error(f"{value!r} is not a number in {condition!r}") from None
    lookup = {
        "eq": Q(**{column: number}),
        "neq": ~Q(**{column: number}),
        "gt": Q(**{f"{column}__gt": number}),
        "gte": Q(**{f"{column}__gte": number}),
        "lt": Q(**{f"{column}__lt": number}),
        "lte": Q(**{f"{column}__lte": number}),
    }[op]
    rows = SubscriberEngagement.objects
    if NUMBER_OPS[op](0, number):
        return ~Q(pk__in=rows.exclude(lookup).values("subscriber_id"))
    return Q(pk__in=rows.filter(lookup).values("subscriber_id"))


def last_engaged_q(condition: dict) -> Q:
    """``{"field": "last_engaged", "op": "within_days" | "before" | "after", "value": ...}``:
    the last human open or click (whichever is later). Someone who never engaged has no such
    date and matches none of these; "not engaged in N days" is the engagement condition."""
    op: Any = condition.get("op")
    value: Any = condition.get("value")  # JSON: checked below
    opened, clicked = "last_human_open_at", "last_human_click_at"
    if op == "within_days":
        try:
            days = int(value)
            if days < 0 or isinstance(value, bool):
                raise ValueError
        except (TypeError, ValueError):
            raise _rule_error(f"{value!r} is not a number of days in {condition!r}") from None
        since = timezone.now() - timedelta(days=days)
        q = Q(**{f"{opened}__gte": since}) | Q(**{f"{clicked}__gte": since})
    elif op in ("before", "after"):
        try:
            day = dt.date.fromisoformat(str(value))
        except ValueError:
            raise _rule_error(f"{value!r} is not a date (YYYY-MM-DD) in {condition!r}") from None
        if op == "after":  # "after 1 May" means from 2 May on, like the other date fields
            start = timezone.make_aware(dt.datetime.combine(day + timedelta(days=1), dt.time.min))
            q = Q(**{f"{opened}__gte": start}) | Q(**{f"{clicked}__gte": start})
        else:
            start = timezone.make_aware(dt.datetime.combine(day, dt.time.min))
            q = (
                (Q(**{f"{opened}__lt": start}) | Q(**{f"{opened}__isnull": True}))
                & (Q(**{f"{clicked}__lt": start}) | Q(**{f"{clicked}__isnull": True}))
                & ~Q(**{f"{opened}__isnull": True, f"{clicked}__isnull": True})
            )
    else:
        raise _rule_error(
            f"last_engaged takes within_days, before or after, not {op!r} in {condition!r}"
        )
    return Q(pk__in=SubscriberEngagement.objects.filter(q).values("subscriber_id"))


# How the segment builder offers them (subscribers.segments.register_condition(builder=...)).
ENGAGEMENT_BUILDER: dict[str, dict[str, Any]] = {
    "engagement": {
        "label": "Human engagement",
        "ops": ["not_engaged", "engaged", "not_opened", "opened", "not_clicked", "clicked"],
        "kind": "days",
        "default": 180,
    },
    "last_engaged": {
        "label": "Last human open or click",
        "ops": ["within_days", "before", "after"],
        "kind": "date",
    },
    "human_opens": {
        "label": "Human opens (all time)",
        "ops": ["gte", "gt", "lte", "lt", "eq", "neq"],
        "kind": "number",
        "default": 1,
    },
    "human_clicks": {
        "label": "Human clicks (all time)",
        "ops": ["gte", "gt", "lte", "lt", "eq", "neq"],
        "kind": "number",
        "default": 1,
    },
    "engagement_score": {
        "label": "Engagement score (0-100)",
        "ops": ["gte", "gt", "lte", "lt", "eq", "neq"],
        "kind": "number",
        "default": 50,
    },
}
