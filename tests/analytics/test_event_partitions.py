"""Events are partitioned by month (analytics.partitions): hits land in the current month's
table, replays are still stored once, beat makes months ahead and drops expired ones whole,
and what the reports, engagement scores and suppressions say survives a dropped month."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from analytics import buffer
from analytics.ingest import Fact, ingest_facts
from analytics.models import (
    CampaignSeries,
    CampaignStats,
    DeliveryActivity,
    Event,
    LinkStats,
    SubscriberEngagement,
)
from analytics.partitions import (
    DEFAULT,
    event_partitions,
    event_partitions_drop_expired,
    event_partitions_ensure,
    month_start,
    partition_name,
)
from analytics.tracking import click_token, open_token
from subscribers.models import Suppression

from .test_webhooks import AUTH, mailgun_failed, postmark

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"

pytestmark = pytest.mark.django_db


def _where(**filters) -> list[str]:
    """The partition each matching event is stored in."""
    ids = list(Event.objects.filter(**filters).values_list("id", flat=True))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM analytics_event WHERE id = ANY(%s) ORDER BY id",
            [ids],
        )
        return [name for (name,) in cursor.fetchall()]


def _post_webhook(client, esp, payload):
    response = client.post(
        f"/anymail/{esp}/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(AUTH.encode()).decode(),
    )
    buffer.flush()
    return response


def _fact(delivery, uid: str, at: datetime, kind: str = "delivered") -> Fact:
    return Fact(uid=uid, kind=kind, occurred_at=at, delivery_id=delivery.pk, esp="postmark")


@pytest.fixture
def _anymail(settings):
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "WEBHOOK_SECRET": AUTH,
        "MAILGUN_WEBHOOK_SIGNING_KEY": "mailgun-signing-key",
    }


@pytest.fixture(autouse=True)
def _months_made():
    """What beat keeps made (a test database kept from months ago has older ones)."""
    event_partitions_ensure()


def test_a_tracking_hit_lands_in_the_current_months_partition(client, sent_campaign):
    _, links, deliveries = sent_campaign
    client.get(f"/t/o/{open_token(deliveries[0].pk)}", HTTP_USER_AGENT=CHROME)
    client.get(f"/t/c/{click_token(deliveries[1].pk, links[0].pk)}", HTTP_USER_AGENT=CHROME)
    assert buffer.flush() == 2
    current = partition_name(month_start(timezone.now()))
    assert _where() == [current, current]


def test_an_event_at_an_impossible_time_is_kept_in_the_default_partition(sent_campaign):
    _, _, deliveries = sent_campaign
    long_ago = datetime(1971, 3, 1, tzinfo=UTC)
    far_ahead = datetime(2199, 1, 1, tzinfo=UTC)
    ingest_facts([_fact(deliveries[0], "old", long_ago), _fact(deliveries[1], "far", far_ahead)])
    assert _where(uid__in=["old", "far"]) == [DEFAULT, DEFAULT]
    # A replay of each is still recognised there.
    assert ingest_facts([_fact(deliveries[0], "old", long_ago)]) == 0


@pytest.mark.usefixtures("_anymail")
def test_a_replayed_webhook_is_one_event(client, sent_campaign):
    _, _, deliveries = sent_campaign
    payload = postmark("Delivery", deliveries[0])
    assert _post_webhook(client, "postmark", payload).status_code == 200
    assert _post_webhook(client, "postmark", payload).status_code == 200
    assert Event.objects.count() == 1


@pytest.mark.usefixtures("_anymail")
def test_a_replayed_webhook_without_a_timestamp_is_one_event(client, sent_campaign):
    """The ESP's event has an id but no time: each receipt dates it afresh, so the
    (uid, occurred_at) key alone would take the replay for a new event."""
    campaign, _, deliveries = sent_campaign
    payload = mailgun_failed(deliveries[0])
    del payload["event-data"]["timestamp"]
    assert _post_webhook(client, "mailgun", payload).status_code == 200
    assert _post_webhook(client, "mailgun", payload).status_code == 200
    assert Event.objects.filter(kind="bounced").count() == 1
    assert CampaignStats.objects.get(campaign=campaign).bounced_hard == 1


def test_an_smtp_answer_filed_twice_is_one_event(sent_campaign):
    """The pipeline's facts are dated when they are filed (campaigns.pipeline)."""
    _, _, deliveries = sent_campaign
    fact = {"uid": "smtp-accepted:1", "kind": "delivered", "delivery_id": deliveries[0].pk}
    assert ingest_facts([Fact(**fact, occurred_at=timezone.now())]) == 1
    assert ingest_facts([Fact(**fact, occurred_at=timezone.now() + timedelta(days=40))]) == 0
    assert Event.objects.count() == 1


def test_a_month_is_made_ahead_once_taking_the_events_default_held_for_it(sent_campaign):
    _, _, deliveries = sent_campaign
    now = timezone.now()
    later = month_start(now, plus=6) + timedelta(days=3)
    ingest_facts([_fact(deliveries[0], "later", later)])
    assert _where(uid="later") == [DEFAULT]

    made = event_partitions_ensure(now=now, ahead=6)
    assert made == [partition_name(month_start(now, plus=n)) for n in (4, 5, 6)]  # 0-3: beat's
    assert _where(uid="later") == [partition_name(month_start(later))]
    assert event_partitions_ensure(now=now, ahead=6) == []
    # New partitions carry the parent's indexes and constraints: a replay is still refused.
    assert ingest_facts([_fact(deliveries[0], "later", later)]) == 0


def _snapshot(client, campaign, subscriber_ids) -> dict:
    csv = client.get(reverse("analytics:campaign-csv", args=[campaign.pk]))
    assert client.get(reverse("analytics:campaign", args=[campaign.pk])).status_code == 200
    return {
        "stats": CampaignStats.objects.filter(campaign=campaign).values().get(),
        "series": list(CampaignSeries.objects.filter(campaign=campaign).values()),
        "links": list(LinkStats.objects.order_by("pk").values()),
        "activity": list(DeliveryActivity.objects.order_by("pk").values()),
        "engagement": list(
            SubscriberEngagement.objects.filter(subscriber_id__in=subscriber_ids).values()
        ),
        "suppressions": list(Suppression.objects.order_by("pk").values()),
        "csv": b"".join(csv.streaming_content),
    }


@pytest.mark.usefixtures("_anymail")
def test_retention_drops_whole_expired_months_and_keeps_reports_engagement_and_suppressions(
    admin_client, settings, sent_campaign
):
    settings.EVENT_RETENTION_MONTHS = 13
    campaign, links, deliveries = sent_campaign
    now = timezone.now()
    for d in deliveries:
        admin_client.get(f"/t/o/{open_token(d.pk)}", HTTP_USER_AGENT=CHROME)
    admin_client.get(f"/t/c/{click_token(deliveries[0].pk, links[0].pk)}", HTTP_USER_AGENT=CHROME)
    buffer.flush()
    _post_webhook(admin_client, "postmark", postmark("Bounce", deliveries[2]))
    next_month = month_start(now, plus=1)
    ingest_facts(
        [
            _fact(deliveries[0], "last-instant", next_month - timedelta(microseconds=1)),
            _fact(deliveries[1], "next-month", next_month, kind="deferred"),
            _fact(deliveries[1], "1971", datetime(1971, 3, 1, tzinfo=UTC), kind="deferred"),
            _fact(deliveries[1], "2199", datetime(2199, 3, 1, tzinfo=UTC), kind="deferred"),
        ]
    )
    subscribers = [d.subscriber_id for d in deliveries]
    before = _snapshot(admin_client, campaign, subscribers)
    assert before["stats"]["unique_human_opens"] == 3 and before["stats"]["bounced_hard"] == 1
    assert any(e["score"] > 0 for e in before["engagement"])
    assert before["suppressions"]
    current = partition_name(month_start(now))
    months = [p.name for p in event_partitions()]

    # Thirteen months after this one ends, this month goes; the next one stays.
    assert event_partitions_drop_expired(now=month_start(now, plus=13)) == []
    dropped = event_partitions_drop_expired(now=month_start(now, plus=14))
    assert dropped == months[: months.index(current) + 1]
    assert current not in {p.name for p in event_partitions()}
    assert set(Event.objects.values_list("uid", flat=True)) == {"next-month", "2199"}
    assert _where(uid="2199") == [DEFAULT]
    assert _snapshot(admin_client, campaign, subscribers) == before
    timeline = admin_client.get(reverse("subscribers:detail", args=[subscribers[0]]))
    assert timeline.status_code == 200


def test_a_retention_of_zero_keeps_every_month(settings, sent_campaign):
    settings.EVENT_RETENTION_MONTHS = 0
    _, _, deliveries = sent_campaign
    ingest_facts([_fact(deliveries[0], "now", timezone.now())])
    months = event_partitions()
    assert event_partitions_drop_expired(now=timezone.now() + timedelta(days=3650)) == []
    assert event_partitions() == months and Event.objects.filter(uid="now").exists()


def test_erasure_reaches_events_in_every_month(admin_client, sent_campaign):
    _, _, deliveries = sent_campaign
    delivery = deliveries[0]
    now = timezone.now()
    event_partitions_ensure(now=month_start(now, plus=-14), ahead=14)  # a year of months back
    times = {
        "now": now,
        "last-month": month_start(now, plus=-1) + timedelta(days=2),
        "old": month_start(now, plus=-14) + timedelta(days=5),
        "1971": datetime(1971, 3, 1, tzinfo=UTC),
    }
    ingest_facts(
        [
            Fact(
                uid=uid,
                kind="opened",
                occurred_at=at,
                delivery_id=delivery.pk,
                ip="198.51.100.23",
                user_agent=CHROME,
                stable_time=True,
            )
            for uid, at in times.items()
        ]
    )
    assert len(set(_where(subscriber_id=delivery.subscriber_id))) == 4  # four partitions

    response = admin_client.post(reverse("subscribers:erase", args=[delivery.subscriber_id]))
    assert response.status_code == 302
    rows = Event.objects.filter(uid__in=times).values_list("uid", "ip", "user_agent")
    assert sorted(rows) == sorted((uid, None, "") for uid in times)


def test_the_beat_schedule_runs_both_tasks():
    from django.conf import settings

    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "analytics.tasks.event_partitions_ensure",
        "analytics.tasks.event_partitions_drop_expired",
    } <= tasks
