"""Writes of the analytics capability that are not the ingestion path itself."""

import uuid
from collections import defaultdict
from typing import Any

from django.db import transaction
from django.db.models import Count, Min, Q, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from campaigns.models import Campaign, Delivery
from subscribers.models import Subscriber

from . import classification as rules
from .ingest import Fact, _classify, _lock, ingest_facts
from .models import (
    CampaignBreakdown,
    CampaignSeries,
    CampaignStats,
    CampaignTracking,
    DeliveryActivity,
    Event,
    LinkStats,
)

K = Event.Kind


def events_reclassify(*, campaign_id: int) -> int:
    """Re-run the classification rules over a campaign's stored raw facts, then rebuild its
    rollups. Returns how many events changed class."""
    sent_at = dict(Delivery.objects.filter(campaign_id=campaign_id).values_list("id", "sent_at"))
    with transaction.atomic():
        _lock()
        # Erasure wiped the IP and user agent of an erased person's events but kept their class:
        # re-running the rules on the blanks would turn every proxy or scanner hit human.
        erased = Subscriber.objects.filter(erased_at__isnull=False).values("id")
        events = list(
            Event.objects.filter(campaign_id=campaign_id, kind__in=[K.OPENED, K.CLICKED]).exclude(
                subscriber_id__in=erased
            )
        )
        facts = [
            Fact(
                uid=e.uid,
                kind=e.kind,
                occurred_at=e.occurred_at,
                delivery_id=e.delivery_id,
                link_id=e.link_id,
                ip=e.ip,
                user_agent=e.user_agent,
                method=e.method or "GET",
                prefetch=e.prefetch,
                campaign_id=campaign_id,
                sent_at=sent_at.get(e.delivery_id) if e.delivery_id is not None else None,
            )
            for e in events
        ]
        # Bursts are judged among the stored clicks themselves, not against live activity.
        _classify(facts, {})
        changed = []
        for event, fact in zip(events, facts, strict=True):
            if (event.classification, event.reason) != (fact.classification, fact.reason[:300]):
                event.classification, event.reason = fact.classification, fact.reason[:300]
                changed.append(event)
        Event.objects.bulk_update(changed, ["classification", "reason"], batch_size=2000)
        campaign_rollups_rebuild(campaign_id=campaign_id)
    return len(changed)


HUMAN = Q(classification=rules.HUMAN)
OPENED, CLICKED = Q(kind=K.OPENED), Q(kind=K.CLICKED)
# DeliveryActivity's columns that a rebuild recomputes from the events.
ACTIVITY_FIELDS = [
    "opens",
    "human_opens",
    "clicks",
    "human_clicks",
    "first_open_at",
    "first_human_open_at",
    "first_click_at",
    "first_human_click_at",
]


def campaign_rollups_rebuild(*, campaign_id: int) -> None:
    """Recompute a campaign's open, click and unsubscribe rollups from its events
    (maintenance path: after a rule change, never on a page view).

    An unsubscribe counts once per delivery, from its first unsubscribe event, as ingestion
    counts it: one-click then the page, or a pause then a topic change, is one recipient lost.
    """
    events = Event.objects.filter(campaign_id=campaign_id)
    activity = _activity_rebuild(events, campaign_id=campaign_id)
    _stats_rebuild(events, activity, campaign_id=campaign_id)
    _series_rebuild(events, campaign_id=campaign_id)
    _link_stats_rebuild(events, campaign_id=campaign_id)
    _breakdown_rebuild(events, campaign_id=campaign_id)


def _activity_rebuild(events: QuerySet, *, campaign_id: int) -> list[DeliveryActivity]:
    """Each delivery's opens, clicks, links clicked by a human and unsubscribe time."""
    left_at = dict(
        events.filter(kind=K.UNSUBSCRIBED, delivery_id__isnull=False)
        .values("delivery_id")
        .annotate(at=Min("occurred_at"))
        .values_list("delivery_id", "at")
    )
    per_delivery = {
        row["delivery_id"]: row
        for row in events.filter(delivery_id__isnull=False, kind__in=[K.OPENED, K.CLICKED])
        .values("delivery_id")
        .annotate(
            opens=Count("id", filter=OPENED),
            human_opens=Count("id", filter=OPENED & HUMAN),
            clicks=Count("id", filter=CLICKED),
            human_clicks=Count("id", filter=CLICKED & HUMAN),
            first_open_at=Min("occurred_at", filter=OPENED),
            first_human_open_at=Min("occurred_at", filter=OPENED & HUMAN),
            first_click_at=Min("occurred_at", filter=CLICKED),
            first_human_click_at=Min("occurred_at", filter=CLICKED & HUMAN),
        )
    }
    human_links = defaultdict(set)
    for delivery_id, link_id in (
        events.filter(kind=K.CLICKED, classification=rules.HUMAN, delivery_id__isnull=False)
        .exclude(link_id=None)
        .values_list("delivery_id", "link_id")
        .distinct()
    ):
        human_links[delivery_id].add(link_id)
    activity = list(DeliveryActivity.objects.filter(campaign_id=campaign_id))
    # A delivery whose activity row is gone (rollups wiped) gets it back from its events.
    missing = (set(per_delivery) | set(left_at)) - {row.delivery_id for row in activity}
    if missing:
        activity += DeliveryActivity.objects.bulk_create(
            [
                DeliveryActivity(
                    delivery_id=delivery_id, campaign_id=campaign_id, subscriber_id=sid
                )
                for delivery_id, sid in events.filter(delivery_id__in=missing)
                .values_list("delivery_id", "subscriber_id")
                .distinct("delivery_id")
                .order_by("delivery_id")
            ]
        )
    for row in activity:
        counted = per_delivery.get(row.delivery_id, {})
        for name in ACTIVITY_FIELDS:
            setattr(row, name, counted.get(name) or (0 if "_at" not in name else None))
        row.human_link_ids = sorted(human_links.get(row.delivery_id, ()))
        row.unsubscribed_at = left_at.get(row.delivery_id)
    DeliveryActivity.objects.bulk_update(
        activity, [*ACTIVITY_FIELDS, "human_link_ids", "unsubscribed_at"], batch_size=2000
    )
    return activity


def _stats_rebuild(
    events: QuerySet[Event], activity: list[DeliveryActivity], *, campaign_id: int
) -> None:
    totals = events.aggregate(
        opens=Count("id", filter=OPENED),
        opens_human=Count("id", filter=OPENED & HUMAN),
        opens_proxy=Count("id", filter=OPENED & Q(classification=rules.PROXY)),
        opens_scanner=Count("id", filter=OPENED & Q(classification=rules.SCANNER)),
        clicks=Count("id", filter=CLICKED),
        clicks_human=Count("id", filter=CLICKED & HUMAN),
        clicks_scanner=Count("id", filter=CLICKED & Q(classification=rules.SCANNER)),
    )
    uniques = {
        "unique_opens": sum(1 for row in activity if row.first_open_at),
        "unique_human_opens": sum(1 for row in activity if row.first_human_open_at),
        "unique_clicks": sum(1 for row in activity if row.first_click_at),
        "unique_human_clicks": sum(1 for row in activity if row.first_human_click_at),
        "unsubscribed": sum(1 for row in activity if row.unsubscribed_at),
    }
    CampaignStats.objects.update_or_create(campaign_id=campaign_id, defaults=totals | uniques)


def _series_rebuild(events: QuerySet, *, campaign_id: int) -> None:
    CampaignSeries.objects.filter(campaign_id=campaign_id).delete()
    CampaignSeries.objects.bulk_create(
        [
            CampaignSeries(campaign_id=campaign_id, **row)
            for row in events.filter(kind__in=[K.OPENED, K.CLICKED])
            .annotate(bucket=TruncHour("occurred_at"))
            .values("bucket")
            .annotate(
                opens=Count("id", filter=OPENED),
                opens_human=Count("id", filter=OPENED & HUMAN),
                clicks=Count("id", filter=CLICKED),
                clicks_human=Count("id", filter=CLICKED & HUMAN),
            )
        ]
    )


def _link_stats_rebuild(events: QuerySet, *, campaign_id: int) -> None:
    for row in (
        events.filter(kind=K.CLICKED, link_id__isnull=False)
        .values("link_id")
        .annotate(
            clicks=Count("id"),
            clicks_human=Count("id", filter=HUMAN),
            unique_human_clicks=Count("delivery_id", filter=HUMAN, distinct=True),
        )
    ):
        LinkStats.objects.update_or_create(
            link_id=row.pop("link_id"), defaults={**row, "campaign_id": campaign_id}
        )


def _breakdown_rebuild(events: QuerySet, *, campaign_id: int) -> None:
    """Clients and devices of each delivery's first human open."""
    first_agents: dict[int, str] = {}
    for delivery_id, agent in (
        events.filter(kind=K.OPENED, classification=rules.HUMAN, delivery_id__isnull=False)
        .order_by("delivery_id", "occurred_at")
        .values_list("delivery_id", "user_agent")
    ):
        first_agents.setdefault(delivery_id, agent)
    counts: defaultdict[tuple[str, str], int] = defaultdict(int)
    for agent in first_agents.values():
        counts[("client", rules.mail_client(agent))] += 1
        counts[("device", rules.device(agent))] += 1
    CampaignBreakdown.objects.filter(
        campaign_id=campaign_id, dimension__in=["client", "device"]
    ).delete()
    CampaignBreakdown.objects.bulk_create(
        [
            CampaignBreakdown(campaign_id=campaign_id, dimension=dim, key=key, human_opens=n)
            for (dim, key), n in counts.items()
        ]
    )


def campaign_tracking_set(
    *,
    campaign: Campaign,
    mode: str,
    utm_source: str = "",
    utm_medium: str = "",
    utm_campaign: str = "",
) -> CampaignTracking:
    if mode not in CampaignTracking.Mode.values:
        raise ValueError(f"Unknown tracking mode {mode!r}")
    tracking, _ = CampaignTracking.objects.update_or_create(
        campaign=campaign,
        defaults={
            "mode": mode,
            "utm_source": utm_source.strip(),
            "utm_medium": utm_medium.strip(),
            "utm_campaign": utm_campaign.strip(),
        },
    )
    return tracking


# How a recipient left or came back, as the preference views name it, for the timeline.
LEAVING_WAYS = {
    "one_click": "one-click unsubscribe",
    "unsubscribe_page": "the unsubscribe page",
    "preferences": "the preference center",
    "exit_survey": "the exit survey",
    "mailto": "an unsubscribe email",
}


def leaving_record(
    *,
    subscriber_id: int,
    email: str,
    delivery_id: int | None,
    kind: str,
    what: str,
    how: str,
    months: int | None = None,
    topics: list[str] | None = None,
) -> int:
    """Record that a recipient left (``kind`` unsubscribed: everything, a pause, some topics)
    or came back (resubscribed), through the one ingestion path, so the campaign whose link was
    used counts it once in its report, export and rollups and the timelines show it.

    The caller has already changed the audience (``already_applied``) and holds
    ``ingestion_lock()`` taken before touching the subscriber. Returns the events stored.
    """
    if kind not in (K.UNSUBSCRIBED, K.RESUBSCRIBED):
        raise ValueError(f"not a leaving event: {kind!r}")
    if what not in ("all", "pause", "resume", "topics"):
        raise ValueError(f"unknown way of leaving {what!r}")
    detail: dict[str, Any] = {"what": what, "how": how}
    if months:
        detail["months"] = months
    if topics:
        detail["topics"] = topics
    fact = Fact(
        # Each change is recorded once by the service that made it (under the subscriber's
        # row lock), so a fresh id per change; the same delivery still counts once.
        uid=f"leave:{uuid.uuid4().hex}",
        kind=kind,
        occurred_at=timezone.now(),
        delivery_id=delivery_id,
        subscriber_id=subscriber_id,
        recipient=email,
        method="POST",
        reason=leaving_description(kind, detail)[:300],
        payload=detail,
        already_applied=True,
        stable_time=True,  # a fresh uid is never replayed: nothing to look for
    )
    return ingest_facts([fact])


def leaving_description(kind: str, detail: dict, *, campaign_name: str = "") -> str:
    """The words of a leaving event for people, e.g. 'Paused all email for 3 months, from
    “Spring sale” (through the preference center)'."""
    # A stored payload may lack a key: then the generic words.
    what: str = detail.get("what") or ""
    topics = ", ".join(detail.get("topics") or ())
    months = detail.get("months") or 0
    if kind == K.RESUBSCRIBED:
        text = {
            "all": "Subscribed again",
            "resume": "Resumed email before the end of a pause",
            "topics": f"Subscribed again to {topics}",
        }.get(what, "Subscribed again")
    else:
        text = {
            "all": "Unsubscribed from all email",
            "pause": f"Paused all email for {months} month{'s' if months != 1 else ''}",
            "topics": f"Unsubscribed from {topics}",
        }.get(what, "Unsubscribed")
    if campaign_name:
        text += f", from “{campaign_name}”"
    way: str = detail.get("how") or ""
    how = LEAVING_WAYS.get(way, way)
    return f"{text} (through {how})" if how else text
