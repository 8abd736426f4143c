"""Writes of the analytics capability that are not the ingestion path itself."""

from collections import defaultdict

from django.db import transaction
from django.db.models import Count, Min, Q
from django.db.models.functions import TruncHour

from . import classification as rules
from .ingest import Fact, _classify, _lock
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
    from campaigns.models import Delivery
    from subscribers.models import Subscriber

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
                sent_at=sent_at.get(e.delivery_id),
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


def campaign_rollups_rebuild(*, campaign_id: int) -> None:
    """Recompute a campaign's open and click rollups from its events (maintenance path:
    after a rule change, never on a page view)."""
    human = Q(classification=rules.HUMAN)
    opened, clicked = Q(kind=K.OPENED), Q(kind=K.CLICKED)
    events = Event.objects.filter(campaign_id=campaign_id)
    per_delivery = {
        row["delivery_id"]: row
        for row in events.filter(delivery_id__isnull=False, kind__in=[K.OPENED, K.CLICKED])
        .values("delivery_id")
        .annotate(
            opens=Count("id", filter=opened),
            human_opens=Count("id", filter=opened & human),
            clicks=Count("id", filter=clicked),
            human_clicks=Count("id", filter=clicked & human),
            first_open_at=Min("occurred_at", filter=opened),
            first_human_open_at=Min("occurred_at", filter=opened & human),
            first_click_at=Min("occurred_at", filter=clicked),
            first_human_click_at=Min("occurred_at", filter=clicked & human),
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
    fields = [
        "opens",
        "human_opens",
        "clicks",
        "human_clicks",
        "first_open_at",
        "first_human_open_at",
        "first_click_at",
        "first_human_click_at",
    ]
    for a in activity:
        row = per_delivery.get(a.delivery_id, {})
        for name in fields:
            setattr(a, name, row.get(name) or (0 if "_at" not in name else None))
        a.human_link_ids = sorted(human_links.get(a.delivery_id, ()))
    DeliveryActivity.objects.bulk_update(activity, [*fields, "human_link_ids"], batch_size=2000)

    totals = events.aggregate(
        opens=Count("id", filter=opened),
        opens_human=Count("id", filter=opened & human),
        opens_proxy=Count("id", filter=opened & Q(classification=rules.PROXY)),
        opens_scanner=Count("id", filter=opened & Q(classification=rules.SCANNER)),
        clicks=Count("id", filter=clicked),
        clicks_human=Count("id", filter=clicked & human),
        clicks_scanner=Count("id", filter=clicked & Q(classification=rules.SCANNER)),
    )
    uniques = {
        "unique_opens": sum(1 for a in activity if a.first_open_at),
        "unique_human_opens": sum(1 for a in activity if a.first_human_open_at),
        "unique_clicks": sum(1 for a in activity if a.first_click_at),
        "unique_human_clicks": sum(1 for a in activity if a.first_human_click_at),
    }
    CampaignStats.objects.update_or_create(campaign_id=campaign_id, defaults=totals | uniques)

    CampaignSeries.objects.filter(campaign_id=campaign_id).delete()
    CampaignSeries.objects.bulk_create(
        [
            CampaignSeries(campaign_id=campaign_id, **row)
            for row in events.filter(kind__in=[K.OPENED, K.CLICKED])
            .annotate(bucket=TruncHour("occurred_at"))
            .values("bucket")
            .annotate(
                opens=Count("id", filter=opened),
                opens_human=Count("id", filter=opened & human),
                clicks=Count("id", filter=clicked),
                clicks_human=Count("id", filter=clicked & human),
            )
        ]
    )
    for row in (
        events.filter(kind=K.CLICKED, link_id__isnull=False)
        .values("link_id")
        .annotate(
            clicks=Count("id"),
            clicks_human=Count("id", filter=human),
            unique_human_clicks=Count("delivery_id", filter=human, distinct=True),
        )
    ):
        LinkStats.objects.update_or_create(
            link_id=row.pop("link_id"), defaults={**row, "campaign_id": campaign_id}
        )
    # Clients and devices of each delivery's first human open.
    first_agents = {}
    for delivery_id, agent in (
        events.filter(kind=K.OPENED, classification=rules.HUMAN, delivery_id__isnull=False)
        .order_by("delivery_id", "occurred_at")
        .values_list("delivery_id", "user_agent")
    ):
        first_agents.setdefault(delivery_id, agent)
    counts = defaultdict(int)
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
    *, campaign, mode: str, utm_source: str = "", utm_medium: str = "", utm_campaign: str = ""
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
