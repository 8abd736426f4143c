"""A link's unique human clicks: one per recipient and link, however many flushes apart."""

from datetime import timedelta

from django.utils import timezone

from analytics.ingest import Fact, ingest_facts
from analytics.models import DeliveryActivity, LinkStats
from analytics.services import campaign_rollups_rebuild

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


def _click(uid, delivery, link, at):
    return Fact(
        uid=uid,
        kind="clicked",
        occurred_at=at,
        delivery_id=delivery.pk,
        link_id=link.pk,
        ip="203.0.113.9",
        user_agent=CHROME,
        method="GET",
    )


def _uniques(links):
    return [LinkStats.objects.get(link=link).unique_human_clicks for link in links]


def test_a_recipient_clicking_a_link_again_in_a_later_flush_counts_once(sent_campaign):
    _campaign, links, deliveries = sent_campaign
    start = timezone.now() - timedelta(hours=1)
    a, b = deliveries[0], deliveries[1]
    # Minutes apart, so no burst rule calls them a scanner.
    ingest_facts([_click("c1", a, links[0], start), _click("c2", b, links[0], start)])
    ingest_facts([_click("c3", a, links[0], start + timedelta(minutes=5))])
    ingest_facts(
        [
            _click("c4", a, links[1], start + timedelta(minutes=9)),
            _click("c5", a, links[0], start + timedelta(minutes=20)),
        ]
    )
    assert _uniques(links) == [2, 1]
    assert LinkStats.objects.get(link=links[0]).clicks_human == 4
    assert sorted(DeliveryActivity.objects.get(delivery=a).human_link_ids) == sorted(
        [links[0].pk, links[1].pk]
    )
    assert DeliveryActivity.objects.get(delivery=b).human_link_ids == [links[0].pk]


def test_a_rebuild_recomputes_the_links_each_recipient_clicked(sent_campaign):
    campaign, links, deliveries = sent_campaign
    start = timezone.now() - timedelta(hours=1)
    ingest_facts([_click("r1", deliveries[0], links[1], start)])
    DeliveryActivity.objects.update(human_link_ids=[])
    campaign_rollups_rebuild(campaign_id=campaign.pk)
    assert DeliveryActivity.objects.get(delivery=deliveries[0]).human_link_ids == [links[1].pk]
    ingest_facts([_click("r2", deliveries[0], links[1], start + timedelta(minutes=30))])
    assert _uniques(links[1:]) == [1]


def test_the_migration_fills_the_clicked_links_from_stored_events(sent_campaign):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("analytics.migrations.0004_delivery_human_links")
    _campaign, links, deliveries = sent_campaign
    start = timezone.now() - timedelta(hours=1)
    ingest_facts(
        [
            _click("m1", deliveries[2], links[0], start),
            _click("m2", deliveries[2], links[1], start + timedelta(minutes=10)),
        ]
    )
    DeliveryActivity.objects.update(human_link_ids=[])
    migration.human_links_from_events(apps, None)
    assert DeliveryActivity.objects.get(delivery=deliveries[2]).human_link_ids == sorted(
        link.pk for link in links
    )
