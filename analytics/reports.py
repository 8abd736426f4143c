"""The figures the report pages show, read from the rollups only (never COUNT(*) over raw
events on a page view): each page is a handful of indexed lookups whatever the volume."""

from datetime import date, datetime, time, timedelta

from django.core.cache import cache
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.selectors import delivery_counts
from subscribers.models import Subscriber, Subscription

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
    """Opens and clicks per hour from the first hour with activity to the last (at most 31
    days), the quiet hours in between shown as zero rather than skipped."""
    rows = {
        r["bucket"]: r
        for r in CampaignSeries.objects.filter(campaign=campaign)
        .order_by("bucket")
        .values("bucket", "opens", "opens_human", "clicks", "clicks_human")[: 24 * 31]
    }
    hours: list[datetime] = []
    if rows:
        hour, last = min(rows), max(rows)
        while hour <= last and len(hours) < 24 * 31:
            hours.append(hour)
            hour += timedelta(hours=1)
    empty = {"opens": 0, "opens_human": 0, "clicks": 0, "clicks_human": 0}
    return {
        "labels": [timezone.localtime(h).strftime("%d %b %H:00") for h in hours],
        **{
            name: [rows.get(h, empty)[name] for h in hours]
            for name in ("opens", "opens_human", "clicks", "clicks_human")
        },
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


def _whole_days(days: int) -> tuple[datetime, list[date]]:
    """The last ``days`` local calendar days, today included, and the instant the first one
    began: a window of "now minus 30 days" would count only part of its first day."""
    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(first, time.min))
    return start, [first + timedelta(days=i) for i in range(days)]


def _day_label(day: date) -> str:
    return day.strftime("%d %b")


def engagement_trend(days: int = 30) -> dict:
    """Human opens and clicks per day, every day of the window shown (zero when nothing
    happened, so a quiet fortnight is not drawn as a line from one busy day to the next)."""
    start, days_list = _whole_days(days)
    rows = {
        r["day"]: r
        for r in CampaignSeries.objects.filter(bucket__gte=start)
        .annotate(day=TruncDate("bucket"))
        .values("day")
        .annotate(opens=Sum("opens_human"), clicks=Sum("clicks_human"))
    }
    return {
        "labels": [_day_label(d) for d in days_list],
        "opens": [rows[d]["opens"] if d in rows else 0 for d in days_list],
        "clicks": [rows[d]["clicks"] if d in rows else 0 for d in days_list],
    }


def list_growth(days: int = 30) -> dict:
    """Subscribes vs. unsubscribes per day. Counted from the subscriber tables, so the result
    is cached for ten minutes: the dashboard never re-counts on every view."""
    start, days_list = _whole_days(days)
    key = f"analytics:list-growth:{days}:{days_list[-1]}:{timezone.get_current_timezone_name()}"
    cached = cache.get(key)
    if cached is not None:
        return cached

    joined = dict(
        Subscriber.objects.filter(created_at__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    left = dict(
        Subscription.objects.filter(unsubscribed_at__gte=start)
        .annotate(day=TruncDate("unsubscribed_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    result = {
        "labels": [_day_label(d) for d in days_list],
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
