"""Reads: the audience of a campaign as one SQL query, progress figures."""

from datetime import datetime, timedelta

from django.db.models import Count, Exists, Func, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from subscribers.models import Segment, Subscriber, Subscription, Suppression
from subscribers.segments import segment_queryset

from .models import Campaign, Delivery, DeliveryCount
from .throttle import estimate_finish


class EmailHash(Func):
    """SHA-256 hex of the lower-cased address, computed by PostgreSQL: the same value as
    subscribers.models.email_hash, so suppressions are matched set-based."""

    template = "encode(sha256(convert_to(%(expressions)s, 'UTF8')), 'hex')"
    output_field = Subscriber._meta.get_field("email")


class EmailDomain(Func):
    template = "lower(split_part(%(expressions)s, '@', 2))"
    output_field = Subscriber._meta.get_field("email")


def audience_queryset(campaign: Campaign, *, now: datetime | None = None) -> QuerySet[Subscriber]:
    """Who would receive the campaign now (see audience_for)."""
    topic_ids = list(campaign.topics.values_list("id", flat=True)) if campaign.pk else []
    return audience_for(
        topic_ids=topic_ids, segment=campaign.segment, since=campaign.audience_since, now=now
    )


def audience_for(
    *,
    topic_ids: list[int],
    segment: Segment | None = None,
    since: datetime | None = None,
    now: datetime | None = None,
) -> QuerySet[Subscriber]:
    """Topics (active subscription to any) and / or the segment, minus everyone who must never
    get it: not active, suppressed, paused, over their monthly cap. One SQL query."""
    now = now or timezone.now()
    if segment is not None:
        qs = segment_queryset(segment)
    elif topic_ids:
        qs = Subscriber.objects.all()
    else:
        return Subscriber.objects.none()
    if topic_ids:
        qs = qs.filter(
            Exists(
                Subscription.objects.filter(
                    subscriber=OuterRef("pk"),
                    topic_id__in=topic_ids,
                    status=Subscription.Status.ACTIVE,
                )
            )
        )
    if since:
        qs = qs.filter(created_at__gt=since)
    month_ago = now - timedelta(days=30)
    sent_this_month = (
        Delivery.objects.filter(
            subscriber=OuterRef("pk"), status=Delivery.Status.SENT, sent_at__gte=month_ago
        )
        .order_by()
        .values("subscriber")
        .annotate(n=Count("id"))
        .values("n")
    )
    qs = qs.exclude(
        Exists(Suppression.objects.filter(email_hash=EmailHash(Lower(OuterRef("email")))))
    )
    return (
        qs.filter(status=Subscriber.Status.ACTIVE)
        .filter(Q(paused_until__isnull=True) | Q(paused_until__lte=now))
        .filter(
            Q(max_campaigns_per_month__isnull=True)
            | Q(
                max_campaigns_per_month__gt=Coalesce(
                    Subquery(sent_this_month, output_field=IntegerField()), 0
                )
            )
        )
    )


def audience_count(campaign: Campaign) -> int:
    return audience_queryset(campaign).count()


def delivery_counts(campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Deliveries per state for these campaigns, from the counters the ledger's trigger keeps
    (a handful of rows per campaign, whatever its size)."""
    counts: dict[int, dict[str, int]] = {pk: {} for pk in campaign_ids}
    if not campaign_ids:
        return counts
    rows = (
        DeliveryCount.objects.filter(campaign_id__in=campaign_ids)
        .order_by()
        .values_list("campaign_id", "status")
        .annotate(n=Sum("n"))
    )
    for campaign_id, status, n in rows:
        if n:
            counts[campaign_id][status] = int(n)
    return counts


def progress_of(campaign: Campaign, counts: dict[str, int], *, with_eta: bool = True) -> dict:
    total = sum(counts.values()) or campaign.total
    done = sum(counts.get(s, 0) for s in ("sent", "failed", "skipped"))
    sent = counts.get("sent", 0)
    rate = None
    eta = None
    if campaign.started_at and sent:
        end = campaign.finished_at or timezone.now()
        elapsed = max((end - campaign.started_at).total_seconds(), 1)
        rate = sent / elapsed
        remaining = total - done
        if with_eta and remaining and rate and campaign.status == Campaign.Status.RUNNING:
            eta = estimate_finish(campaign=campaign, remaining=remaining, rate=rate)
    return {
        "counts": counts,
        "total": total,
        "done": done,
        "sent": sent,
        "percent": int(100 * done / total) if total else 0,
        "rate": rate,
        "eta": eta,
        "unknown": counts.get("unknown", 0),
        # What the page shows: each state by its label, in the ledger's order.
        "breakdown": [
            (label, counts[value]) for value, label in Delivery.Status.choices if value in counts
        ],
    }


def campaigns_with_progress(campaigns: list[Campaign]) -> list[Campaign]:
    """Set ``progress`` on each started campaign of a list, from the ledger's counters read in
    one query for them all (no scan, no query per row)."""
    counts = delivery_counts([c.pk for c in campaigns if c.started_at])
    for campaign in campaigns:
        if campaign.pk in counts:
            campaign.progress = progress_of(campaign, counts[campaign.pk], with_eta=False)
    return campaigns


def campaigns_listed(*, limit: int = 200) -> list[Campaign]:
    """The campaigns page: the latest campaigns (not transactional sends), with progress."""
    return campaigns_with_progress(
        list(
            Campaign.objects.filter(kind=Campaign.Kind.CAMPAIGN).select_related(
                "template", "connection"
            )[:limit]
        )
    )


def campaign_progress(campaign: Campaign) -> dict:
    return progress_of(campaign, delivery_counts([campaign.pk])[campaign.pk])


def delivery_page(
    campaign: Campaign, *, status: str | None, after_id: int, size: int = 100
) -> list[Delivery]:
    """Keyset pagination over the ledger (by id), through the (campaign, status, id) index.

    Unfiltered, one page per status merged by id (a Merge Append of short index scans): a
    plain ``campaign_id = X ORDER BY id`` walks the primary key from the start and skips every
    earlier campaign's rows, seconds once the ledger holds millions."""
    rows = Delivery.objects.filter(campaign=campaign, id__gt=after_id)
    if status:
        return list(rows.filter(status=status).order_by("id")[:size])
    pages = [rows.filter(status=value).order_by("id")[:size] for value in Delivery.Status.values]
    return list(pages[0].union(*pages[1:], all=True).order_by("id")[:size])
