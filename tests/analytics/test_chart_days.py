"""Charts draw every day (or hour) of their window, quiet ones as zero, and count whole days;
an alert says what it did, never that a finished campaign "was paused"."""

import json
import re
from datetime import timedelta

from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from analytics.ingest import Fact, ingest_facts
from analytics.models import ReputationAlert
from campaigns.models import Campaign
from subscribers.models import Subscriber
from tests.support.factories import (
    CampaignSeriesFactory,
    SubscriberFactory,
    create_sent_campaign,
)


def _json(body: str, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', body)
    return json.loads(match.group(1))


def _at_local(days_ago: int, hour: int):
    day = timezone.localdate() - timedelta(days=days_ago)
    return timezone.make_aware(timezone.datetime(day.year, day.month, day.day, hour))


def test_engagement_fills_quiet_days_with_zero_and_counts_the_first_day_whole(viewer_client):
    campaign, _, _ = create_sent_campaign()
    # Early on the window's first day (before "now minus 30 days" on most clocks), 15 days
    # ago, and today: two weeks of nothing in between.
    for days_ago, opens in ((29, 3), (15, 5), (0, 2)):
        CampaignSeriesFactory(
            campaign=campaign, bucket=_at_local(days_ago, 0), opens=opens, opens_human=opens
        )
    body = viewer_client.get(reverse("analytics:home")).content.decode()
    engagement = _json(body, "engagement-data")
    assert len(engagement["labels"]) == 30 == len(engagement["opens"])
    first = timezone.localdate() - timedelta(days=29)
    assert engagement["labels"][0] == first.strftime("%d %b")
    assert engagement["labels"][-1] == timezone.localdate().strftime("%d %b")
    assert engagement["opens"][0] == 3 and engagement["opens"][14] == 5
    assert engagement["opens"][-1] == 2 and sum(engagement["opens"]) == 10
    assert engagement["opens"][1:14] == [0] * 13


def test_list_growth_counts_its_first_day_whole(viewer_client):
    cache.clear()  # the figures are cached for ten minutes
    s = SubscriberFactory(email="early@example.com")
    Subscriber.objects.filter(pk=s.pk).update(created_at=_at_local(29, 0))
    body = viewer_client.get(reverse("analytics:home")).content.decode()
    growth = _json(body, "growth-data")
    assert len(growth["labels"]) == 30 and growth["subscribes"][0] == 1


def test_the_campaign_series_fills_quiet_hours(viewer_client):
    campaign, _, _ = create_sent_campaign()
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    CampaignSeriesFactory(campaign=campaign, bucket=start, opens=2, opens_human=1)
    CampaignSeriesFactory(
        campaign=campaign, bucket=start + timedelta(hours=4), opens=1, opens_human=1
    )
    body = viewer_client.get(reverse("analytics:campaign", args=[campaign.pk])).content.decode()
    series = _json(body, "series-data")
    assert len(series["labels"]) == 5
    assert series["opens"] == [2, 0, 0, 0, 1]


def _feed(deliveries, kind, n, *, start=0, **fields):
    ingest_facts(
        [
            Fact(uid=f"{kind}-{d.pk}", kind=kind, occurred_at=timezone.now(), delivery_id=d.pk,
                 esp="postmark", **fields)
            for d in deliveries[start : start + n]
        ]
    )  # fmt: skip


def test_an_alert_on_a_finished_campaign_does_not_say_it_was_paused(viewer_client, settings):
    settings.REPUTATION_MIN_VOLUME = 50
    campaign, _, deliveries = create_sent_campaign(name="Done", status="finished", n=100)
    _feed(deliveries, "delivered", 94)
    _feed(deliveries, "bounced", 6, start=94, bounce_type="hard")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.FINISHED
    alerts = ReputationAlert.objects.filter(level="critical")
    assert {a.scope for a in alerts} == {"campaign", "domain"}
    body = viewer_client.get(reverse("analytics:home")).content.decode()
    assert "was paused" not in body and "were paused" not in body
    assert "it is finished (nothing to pause)" in body
    assert "none of its campaigns is running (nothing to pause)" in body


def test_an_alert_that_paused_a_running_campaign_says_so(db, settings):
    settings.REPUTATION_MIN_VOLUME = 50
    campaign, _, deliveries = create_sent_campaign(name="Live", status="running", n=100)
    _feed(deliveries, "delivered", 94)
    _feed(deliveries, "bounced", 6, start=94, bounce_type="hard")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    # Its domain's alert paused it first; the campaign's own alert says it is paused.
    assert ReputationAlert.objects.get(scope="campaign").message.endswith("; it is paused.")
    assert ReputationAlert.objects.get(scope="domain").message.endswith(
        "; 1 running campaign was paused."
    )
