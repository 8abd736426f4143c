"""The figures the report pages show, read from the rollups only (never COUNT(*) over raw
events on a page view): each page is a handful of indexed lookups whatever the volume."""

from datetime import timedelta

from django.core.cache import cache
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.selectors import delivery_counts

from . import reputation
from .models import (
    CampaignBreakdown,
    CampaignSeries,
    CampaignStats,
    DomainDaily,
    LinkStats,
    ReputationAlert,
    SendingDomain,
)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def campaign_summary(campaign: Campaign) -> dict:
    stats = CampaignStats.objects.filter(campaign=campaign).first() or CampaignStats(
        campaign=campaign
    )
    delivered = stats.delivered or campaign.total or 0
    base = delivered
    return {
        "stats": stats,
        "base": base,
        # What the ledger handed to the server; "delivered" only counts what the ESP reported.
        "sent": delivery_counts([campaign.pk])[campaign.pk].get("sent", 0),
        "open_rate": _rate(stats.unique_human_opens, base),
        "click_rate": _rate(stats.unique_human_clicks, base),
        "click_to_open": _rate(stats.unique_human_clicks, stats.unique_human_opens),
        "bounce_rate": _rate(stats.bounced_hard, stats.delivered + stats.bounced_hard),
        "complaint_rate": _rate(stats.complained, stats.delivered + stats.bounced_hard),
        "unsubscribe_rate": _rate(stats.unsubscribed, base),
    }


def campaign_series(campaign: Campaign) -> dict:
    rows = list(
        CampaignSeries.objects.filter(campaign=campaign)
        .order_by("bucket")
        .values("bucket", "opens", "opens_human", "clicks", "clicks_human")[: 24 * 31]
    )
    return {
        "labels": [timezone.localtime(r["bucket"]).strftime("%d %b %H:00") for r in rows],
        "opens": [r["opens"] for r in rows],
        "opens_human": [r["opens_human"] for r in rows],
        "clicks": [r["clicks"] for r in rows],
        "clicks_human": [r["clicks_human"] for r in rows],
    }


def campaign_links(campaign: Campaign) -> list[dict]:
    stats = {
        s["link_id"]: s
        for s in LinkStats.objects.filter(campaign_id=campaign.pk).values(
            "link_id", "clicks", "clicks_human", "unique_human_clicks"
        )
    }
    return [
        {"index": link.index, "url": link.url, **stats.get(link.pk, {})}
        for link in campaign.links.all()
    ]


def campaign_breakdown(campaign: Campaign, dimension: str, order: str, limit: int = 10):
    return list(
        CampaignBreakdown.objects.filter(campaign=campaign, dimension=dimension)
        .order_by(f"-{order}", "key")
        .values("key", "delivered", "bounced", "human_opens", "human_clicks")[:limit]
    )


def campaigns_trend(limit: int = 20) -> list[dict]:
    rows = []
    for stats in (
        CampaignStats.objects.select_related("campaign")
        .filter(campaign__status__in=["running", "paused", "finished"])
        .order_by("-campaign__created_at")[:limit]
    ):
        summary = campaign_summary(stats.campaign)
        rows.append({"campaign": stats.campaign, **summary})
    return list(reversed(rows))


def engagement_trend(days: int = 30) -> dict:
    since = timezone.now() - timedelta(days=days)
    rows = list(
        CampaignSeries.objects.filter(bucket__gte=since)
        .annotate(day=TruncDate("bucket"))
        .values("day")
        .annotate(opens=Sum("opens_human"), clicks=Sum("clicks_human"))
        .order_by("day")
    )
    return {
        "labels": [r["day"].strftime("%d %b") for r in rows],
        "opens": [r["opens"] for r in rows],
        "clicks": [r["clicks"] for r in rows],
    }


def list_growth(days: int = 30) -> dict:
    """Subscribes vs. unsubscribes per day. Counted from the subscriber tables, so the result
    is cached for ten minutes: the dashboard never re-counts on every view."""
    key = f"analytics:list-growth:{days}:{timezone.now().date()}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    from subscribers.models import Subscriber, Subscription

    since = timezone.now() - timedelta(days=days)
    joined = dict(
        Subscriber.objects.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    left = dict(
        Subscription.objects.filter(unsubscribed_at__gte=since)
        .annotate(day=TruncDate("unsubscribed_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    today = timezone.now().date()
    days_list = [today - timedelta(days=i) for i in range(days - 1, -1, -1)]
    result = {
        "labels": [d.strftime("%d %b") for d in days_list],
        "subscribes": [joined.get(d, 0) for d in days_list],
        "unsubscribes": [left.get(d, 0) for d in days_list],
    }
    cache.set(key, result, 600)
    return result


def reputation_tiles() -> list[dict]:
    since = timezone.now().date() - timedelta(days=30)
    domains = set(
        DomainDaily.objects.filter(day__gte=since).values_list("domain", flat=True).distinct()
    ) | set(SendingDomain.objects.values_list("domain", flat=True))
    dns_status = dict(SendingDomain.objects.values_list("domain", "status"))
    tiles = []
    for domain in sorted(d for d in domains if d):
        rates = reputation.domain_rates(domain)
        tiles.append(
            {
                "domain": domain,
                "volume": rates["volume"],
                "complaints": rates[ReputationAlert.Metric.COMPLAINTS],
                "hard_bounces": rates[ReputationAlert.Metric.HARD_BOUNCES],
                "complaints_level": reputation.level_of("complaints", rates["complaints"]),
                "bounces_level": reputation.level_of("hard_bounces", rates["hard_bounces"]),
                "sender_bounces": rates[ReputationAlert.Metric.SENDER_BOUNCES],
                "sender_level": reputation.level_of("sender_bounces", rates["sender_bounces"]),
                "dns": dns_status.get(domain, "unchecked"),
            }
        )
    return tiles
