"""The dashboard home: list growth and engagement charts, running and recent campaigns, open
alerts; a fixed number of queries however many campaigns there are."""

import json
import re
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign
from tests.support.factories import (
    CampaignFactory,
    CampaignSeriesFactory,
    CampaignStatsFactory,
    ReputationAlertFactory,
    SubscriberFactory,
)

pytestmark = pytest.mark.django_db

HOME = reverse("home")


def _json(body: str, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', body)
    return json.loads(match.group(1))


def _section(body: str, section_id: str) -> str:
    match = re.search(rf'id="{section_id}".*?</section>', body, re.S)
    return match.group(0) if match else ""


def _campaigns(n: int, status: str, **fields) -> list[Campaign]:
    now = timezone.now()
    campaigns = [
        CampaignFactory(bare=True, name=f"{status} {i}", status=status, started_at=now, **fields)
        for i in range(n)
    ]
    for c in campaigns:
        CampaignStatsFactory(campaign=c, delivered=200, unique_human_opens=50)
    return campaigns


def test_the_home_shows_charts_campaigns_and_alerts(viewer_client):
    cache.clear()
    SubscriberFactory(email="ann@example.com")
    running = _campaigns(1, "running")[0]
    finished = _campaigns(1, "finished", finished_at=timezone.now())[0]
    CampaignSeriesFactory(
        campaign=finished, bucket=timezone.now() - timedelta(hours=1), opens=4, opens_human=3
    )
    ReputationAlertFactory(
        scope="domain", key="news.example.com", metric="complaints", level="critical",
        rate=0.004, volume=1000, message="Complaint rate of news.example.com is 0.40 %",
    )  # fmt: skip
    body = viewer_client.get(HOME).content.decode()
    assert 'id="growth-chart"' in body and 'id="engagement-chart"' in body
    assert _json(body, "growth-data")["subscribes"][-1] == 1
    assert sum(_json(body, "engagement-data")["opens"]) == 3
    assert running.name in _section(body, "dashboard-current")
    recent = _section(body, "dashboard-recent")
    assert finished.name in recent and "25.0 %" in recent
    assert "Complaint rate of news.example.com is 0.40 %" in _section(body, "dashboard-alerts")
    # The charts are drawn by static files (a Content-Security-Policy allows no inline script).
    assert "js/growth_engagement.js" in body and "analytics/charts.js" in body
    assert re.search(r"<script(?![^>]*(src=|application/json))", body) is None


def test_an_empty_home_says_what_is_missing(viewer_client):
    body = viewer_client.get(HOME).content.decode()
    assert "No campaign is running or scheduled." in body
    assert "No campaign has been sent yet." in body
    assert 'id="dashboard-alerts"' not in body


def test_the_home_makes_the_same_queries_for_2_or_20_campaigns(viewer_client):
    def queries() -> int:
        cache.clear()
        with CaptureQueriesContext(connection) as ctx:
            assert viewer_client.get(HOME).status_code == 200
        return len(ctx.captured_queries)

    _campaigns(1, "running"), _campaigns(1, "finished", finished_at=timezone.now())
    few = queries()
    _campaigns(9, "running"), _campaigns(9, "finished", finished_at=timezone.now())
    assert queries() == few


def test_the_subscriber_tile_counts_exactly_then_says_about_past_the_limit(viewer_client, settings):
    for n in range(5):
        SubscriberFactory(status="active" if n < 3 else "unsubscribed")

    def tile():
        body = viewer_client.get(HOME).content.decode()
        return re.sub(r"\s+", " ", body.split("Subscribers</div>", 1)[1].split("</a>", 1)[0])

    assert "about" not in tile() and ">5</div>" in tile() and "3 active" in tile()
    settings.SUBSCRIBER_EXACT_COUNT_LIMIT = 2
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE subscribers_subscriber")
    assert "about</span> 5</div>" in tile() and "3 active" in tile()
