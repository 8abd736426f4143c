from datetime import timedelta

import pytest
from django.utils import timezone

from analytics import buffer
from analytics.classification import Facts, classify, device, mail_client
from analytics.ingest import Fact, ingest_facts
from analytics.models import CampaignStats, DeliveryActivity, Event, LinkStats
from analytics.services import events_reclassify
from analytics.tracking import click_token

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)
IPHONE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (Facts("opened", "81.2.69.160", CHROME, seconds_since_sent=3600), "human"),
        (Facts("clicked", "81.2.69.160", CHROME, seconds_since_sent=3600), "human"),
        (Facts("opened", "17.58.101.4", "Mozilla/5.0"), "proxy"),  # Apple MPP
        (Facts("opened", "66.249.84.12", "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"), "proxy"),
        (Facts("opened", "81.2.69.160", "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"), "proxy"),
        (Facts("clicked", "40.93.12.8", CHROME, seconds_since_sent=3600), "scanner"),  # Safe Links
        (Facts("clicked", "148.163.140.2", CHROME, seconds_since_sent=9000), "scanner"),  # PP
        (Facts("clicked", "205.139.110.60", CHROME, seconds_since_sent=9000), "scanner"),  # MC
        (
            Facts("clicked", "81.2.69.160", "BarracudaCentral/1.0", seconds_since_sent=900),
            "scanner",
        ),
        (Facts("clicked", "81.2.69.160", CHROME, seconds_since_sent=4), "scanner"),  # too soon
        (
            Facts("clicked", "81.2.69.160", CHROME, seconds_since_sent=600, links_in_burst=4),
            "scanner",
        ),
        (Facts("clicked", "81.2.69.160", CHROME, method="HEAD", seconds_since_sent=600), "scanner"),
        (Facts("clicked", "81.2.69.160", CHROME, prefetch=True, seconds_since_sent=600), "scanner"),
        (
            Facts("clicked", "81.2.69.160", "python-requests/2.31", seconds_since_sent=600),
            "scanner",
        ),
        (Facts("opened", "81.2.69.160", IPHONE_MAIL), "human"),
        (Facts("opened", "81.2.69.160", ""), "scanner"),
    ],
)
def test_each_hit_is_classified_human_proxy_or_scanner(facts, expected):
    assert classify(facts).classification == expected


def test_a_verdict_says_why():
    assert "Safe Links" in classify(Facts("clicked", "40.107.1.1", CHROME)).reason


def test_clients_and_devices_are_named():
    assert mail_client(IPHONE_MAIL) == "Apple Mail" and device(IPHONE_MAIL) == "Mobile"
    assert mail_client(CHROME) == "Chrome" and device(CHROME) == "Desktop"


def test_a_scanner_clicking_every_link_at_once_is_not_counted_as_human(client, sent_campaign):
    campaign, links, deliveries = sent_campaign
    d = deliveries[0]
    # A scanner walks every link within a second; a person clicks one link an hour later.
    for link in links * 2:
        client.get(f"/t/c/{click_token(d.pk, link.pk)}", HTTP_USER_AGENT=CHROME)
    buffer.flush()
    assert set(Event.objects.values_list("classification", flat=True)) == {"scanner"}
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.clicks, stats.clicks_human, stats.unique_human_clicks) == (4, 0, 0)


def test_a_click_seconds_after_sending_is_a_scanner(client, sent_campaign):
    _campaign, links, deliveries = sent_campaign
    d = deliveries[1]
    d.sent_at = timezone.now() - timedelta(seconds=2)
    d.save()
    client.get(f"/t/c/{click_token(d.pk, links[0].pk)}", HTTP_USER_AGENT=CHROME)
    buffer.flush()
    assert Event.objects.get().classification == "scanner"
    assert LinkStats.objects.get(link=links[0]).clicks_human == 0


def test_rules_can_be_rerun_over_the_raw_facts(sent_campaign, monkeypatch):
    campaign, _links, deliveries = sent_campaign
    now = timezone.now()
    ingest_facts(
        [
            Fact(
                uid=f"x{i}",
                kind="opened",
                occurred_at=now,
                delivery_id=deliveries[0].pk,
                ip="203.0.113.9",
                user_agent=CHROME,
                method="GET",
            )
            for i in range(2)
        ]
    )
    assert CampaignStats.objects.get(campaign=campaign).unique_human_opens == 1
    # 203.0.113.0/24 turns out to be a proxy: add it to the rules and re-run them.
    from analytics import classification

    monkeypatch.setitem(classification.PROXY_NETWORKS, "Test proxy", ["203.0.113.0/24"])
    classification._networks.cache_clear()
    classification.network_of.cache_clear()
    try:
        changed = events_reclassify(campaign_id=campaign.pk)
    finally:
        classification._networks.cache_clear()
        classification.network_of.cache_clear()
    assert changed == 2
    assert set(Event.objects.values_list("classification", flat=True)) == {"proxy"}
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.opens, stats.opens_human, stats.opens_proxy, stats.unique_human_opens) == (
        2,
        0,
        2,
        0,
    )
    assert DeliveryActivity.objects.get(delivery=deliveries[0]).human_opens == 0
