from datetime import timedelta

from django.utils import timezone

from analytics.hygiene import engagement_scores_refresh, sunset_preview, sunset_run
from analytics.ingest import Fact, ingest_facts
from analytics.models import SubscriberEngagement
from analytics.selectors import engagement_q, subscriber_timeline
from subscribers.models import Subscriber, Suppression
from tests.support.factories import (
    SegmentFactory,
    SubscriberEngagementFactory,
    SubscriberFactory,
    SunsetPolicyFactory,
    create_sent_campaign,
)

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0"


def _open(delivery, *, ago, agent=CHROME, ip="81.2.69.160", uid=None):
    ingest_facts(
        [
            Fact(
                uid=uid or f"o-{delivery.pk}-{ago}",
                kind="opened",
                occurred_at=timezone.now() - ago,
                delivery_id=delivery.pk,
                user_agent=agent,
                ip=ip,
                method="GET",
            )
        ]
    )


def test_engagement_conditions_count_human_opens_only(db):
    campaign, _, deliveries = create_sent_campaign(n=3, sent_ago=timedelta(days=3))
    _open(deliveries[0], ago=timedelta(days=2))
    _open(deliveries[1], ago=timedelta(days=2), agent="Mozilla/5.0", ip="17.58.1.1")  # Apple MPP
    opened = set(Subscriber.objects.filter(engagement_q("opened", 30)).values_list("pk", flat=True))
    assert opened == {deliveries[0].subscriber_id}
    silent = set(
        Subscriber.objects.filter(engagement_q("not_engaged", 30)).values_list("pk", flat=True)
    )
    assert silent == {deliveries[1].subscriber_id, deliveries[2].subscriber_id}
    of_campaign = Subscriber.objects.filter(engagement_q("opened", 30, campaign_id=campaign.pk))
    assert list(of_campaign.values_list("pk", flat=True)) == [deliveries[0].subscriber_id]
    assert not Subscriber.objects.filter(engagement_q("opened", 1)).exists()


def test_the_engagement_score_rises_with_human_activity_and_decays(db):
    _, _, deliveries = create_sent_campaign(n=2, sent_ago=timedelta(days=3))
    _open(deliveries[0], ago=timedelta(hours=1))
    _open(deliveries[1], ago=timedelta(days=90))
    fresh = SubscriberEngagement.objects.get(subscriber_id=deliveries[0].subscriber_id)
    stale = SubscriberEngagement.objects.get(subscriber_id=deliveries[1].subscriber_id)
    assert fresh.score > stale.score > 0
    assert engagement_scores_refresh() == 2
    stale.refresh_from_db()
    assert stale.score < 10


def test_the_sunset_policy_previews_then_unsubscribes_the_silent(db):
    old = timezone.now() - timedelta(days=400)
    Subscriber.objects.update(created_at=old)
    _regular, _, deliveries = create_sent_campaign(n=3, sent_ago=timedelta(days=60))
    Subscriber.objects.update(created_at=old)
    _open(deliveries[0], ago=timedelta(days=50))  # engaged: never touched
    reengagement, _, _re_deliveries = create_sent_campaign(
        name="We miss you", n=3, sent_ago=timedelta(days=40)
    )
    # Reader 2 got the re-engagement mail only 40 days ago... reader 1 too: grace is 30 days.
    policy = SunsetPolicyFactory(
        inactive_days=180, grace_days=30, reengagement_campaign=reengagement
    )
    preview = sunset_preview(policy)
    silent = {deliveries[1].subscriber_id, deliveries[2].subscriber_id}
    assert set(preview["unsubscribe"].values_list("pk", flat=True)) == silent
    assert set(preview["reengage"].values_list("pk", flat=True)) == set()
    assert Subscriber.objects.filter(status="unsubscribed").count() == 0  # preview changes nothing
    assert sunset_run(policy=policy) == 2
    assert set(Subscriber.objects.filter(status="unsubscribed").values_list("pk", flat=True)) == (
        silent
    )
    assert Suppression.objects.filter(reason="unsubscribed", event="sunset").count() == 2


def test_without_a_reengagement_campaign_the_preview_lists_who_would_get_one(db):
    _, _, _deliveries = create_sent_campaign(n=2, sent_ago=timedelta(days=10))
    Subscriber.objects.update(created_at=timezone.now() - timedelta(days=400))
    policy = SunsetPolicyFactory(inactive_days=180)
    preview = sunset_preview(policy)
    assert preview["reengage"].count() == 2 and preview["unsubscribe"].count() == 0


def test_a_subscriber_timeline_shows_deliveries_and_events(db):
    _, _, deliveries = create_sent_campaign(n=1, sent_ago=timedelta(days=3))
    _open(deliveries[0], ago=timedelta(days=1))
    timeline = subscriber_timeline(deliveries[0].subscriber_id)
    assert [row["kind"] for row in timeline] == ["opened", "sent"]


def test_segment_rules_gain_human_engagement_conditions(db):
    import pytest

    from subscribers.segments import SegmentRuleError, rules_q, segment_queryset

    campaign, _, deliveries = create_sent_campaign(n=3, sent_ago=timedelta(days=3))
    _open(deliveries[0], ago=timedelta(days=2))
    _open(deliveries[1], ago=timedelta(days=2), agent="Mozilla/5.0", ip="17.58.1.1")
    segment = SegmentFactory(
        name="Readers",
        rules={
            "match": "all",
            "conditions": [
                {
                    "field": "engagement",
                    "op": "opened",
                    "value": {"days": 30, "campaign": campaign.pk},
                },
            ],
        },
    )
    assert list(segment_queryset(segment).values_list("pk", flat=True)) == [
        deliveries[0].subscriber_id
    ]
    never = Subscriber.objects.filter(
        rules_q({"match": "all", "conditions": [{"field": "engagement", "op": "not_opened"}]})
    )
    assert set(never.values_list("pk", flat=True)) == {
        deliveries[1].subscriber_id,
        deliveries[2].subscriber_id,
    }
    with pytest.raises(SegmentRuleError):
        rules_q(
            {
                "match": "all",
                "conditions": [{"field": "engagement", "op": "opened", "value": "soon"}],
            }
        )


def test_the_sql_score_and_the_python_score_agree(db):
    from analytics.ingest import engagement_score

    now = timezone.now()
    shapes = [
        {},
        {"last_human_open_at": now - timedelta(days=1), "human_opens": 3},
        {"last_human_click_at": now - timedelta(days=45), "human_clicks": 12},
        {
            "last_human_open_at": now - timedelta(days=200),
            "last_human_click_at": now + timedelta(minutes=5),  # a clock a little ahead
            "human_opens": 40,
            "human_clicks": 2,
        },
    ]
    for i, shape in enumerate(shapes):
        subscriber = SubscriberFactory(email=f"score{i}@example.org")
        SubscriberEngagementFactory(subscriber=subscriber, **shape)
    engagement_scores_refresh()
    for row in SubscriberEngagement.objects.all():
        assert abs(row.score - engagement_score(row, now=now)) <= 1, row
