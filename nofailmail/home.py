"""The dashboard's home page: a tile from each app (subscribers, templates, campaigns,
analytics). It lives in the project package, the one place that knows every app."""

from django.shortcuts import render

from analytics import reports
from analytics.models import ReputationAlert
from campaigns.models import Campaign
from campaigns.selectors import campaigns_with_progress
from core.roles import viewer_required
from subscribers.models import Subscriber, Topic
from subscribers.selectors import subscribers_total
from templates_app.models import Template


@viewer_required
def home(request):
    # Exact up to SUBSCRIBER_EXACT_COUNT_LIMIT, the planner's figures past it ("about"): a
    # count of the whole table took a quarter of a second at a million subscribers.
    total = subscribers_total(Subscriber.objects.all(), filtered=False)
    active = subscribers_total(
        Subscriber.objects.filter(status=Subscriber.Status.ACTIVE), filtered=True
    )
    counts = {
        "subscribers": total.count,
        "active": active.count,
        "estimated": total.estimated or active.estimated,
        "topics": Topic.objects.count(),
        "templates": Template.objects.count(),
        "campaigns": Campaign.objects.count(),
    }
    S = Campaign.Status
    listed = Campaign.objects.select_related("stats").order_by("-id")
    current = list(listed.filter(status__in=[S.RUNNING, S.PAUSED, S.SCHEDULED])[:10])
    recent = list(
        listed.filter(status__in=[S.FINISHED, S.CANCELLED]).order_by("-finished_at", "-id")[:5]
    )
    # The ledger's counters for every listed campaign in one query, as on the campaign list.
    campaigns_with_progress(current + recent)
    for campaign in recent:
        stats = getattr(campaign, "stats", None)
        if stats is not None and stats.delivered:
            campaign.open_rate = stats.unique_human_opens / stats.delivered
            campaign.click_rate = stats.unique_human_clicks / stats.delivered
    return render(
        request,
        "home.html",
        {
            "counts": counts,
            "current_campaigns": current,
            "recent_campaigns": recent,
            "alerts": ReputationAlert.objects.filter(resolved_at__isnull=True).order_by(
                "level",
                "-created_at",  # critical before warning
            )[:5],
            "open_alerts": ReputationAlert.objects.filter(resolved_at__isnull=True).count(),
            "growth": reports.list_growth(),
            "engagement": reports.engagement_trend(),
        },
    )
