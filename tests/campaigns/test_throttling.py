import itertools
import time
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from campaigns.models import Campaign, Delivery
from campaigns.pipeline import campaign_send_work
from campaigns.services import campaign_start
from campaigns.throttle import estimate_finish, warmup_cap_for, warmup_days_needed
from tests.support.factories import CampaignFactory, SendingConnectionFactory, make_audience


def test_a_domain_cap_defers_the_excess_to_the_next_minute(db, smtp_sink):
    topic, _ = make_audience(5, domain="gmail.com")
    make_audience(2, topic=topic, prefix="other")
    connection = SendingConnectionFactory(sink=smtp_sink, domain_caps={"gmail.com": 3})
    campaign = CampaignFactory(topic=topic, connection=connection)
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "idle"
    received = smtp_sink.recipients()
    assert sum(r.endswith("@gmail.com") for r in received) == 3
    assert sum(r.endswith("@example.org") for r in received) == 2
    deferred = Delivery.objects.filter(campaign=campaign, status="pending")
    assert deferred.count() == 2
    assert all(d.not_before > timezone.now() and d.attempts == 0 for d in deferred)


def test_the_warm_up_cap_stops_the_day_and_the_estimate_spans_several_days(db, smtp_sink):
    topic, _ = make_audience(20)
    today = datetime.now(UTC).date()
    connection = SendingConnectionFactory(
        sink=smtp_sink, warmup_plan=[4, 10], warmup_started_on=today
    )
    campaign = CampaignFactory(topic=topic, connection=connection)
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "warmup"
    assert len(smtp_sink.messages) == 4
    campaign.refresh_from_db()
    assert "Warm-up" in campaign.status_reason and campaign.status == Campaign.Status.RUNNING
    # 16 left: 10 tomorrow, the rest the day after (warmed up by then).
    finish = estimate_finish(campaign=campaign, remaining=16, rate=100.0)
    assert finish.date() == today + timedelta(days=2)
    assert warmup_days_needed(connection, 20) == 3


def test_warm_up_caps_follow_the_plan_day_by_day(db):
    connection = SendingConnectionFactory(
        name="new-ip", warmup_plan=[100, 200, 400], warmup_started_on=datetime(2026, 1, 1).date()
    )
    day = datetime(2026, 1, 1).date()
    assert [warmup_cap_for(connection, day + timedelta(days=i)) for i in range(4)] == [
        100,
        200,
        400,
        None,
    ]


def test_a_rate_below_one_per_second_is_honoured_not_rounded_up(db, smtp_sink):
    # Warm-up starts slow: 0.8 msg/s means one message every 1.25 s, not one per second.
    topic, _ = make_audience(3)
    connection = SendingConnectionFactory(sink=smtp_sink, rate_per_second=0.8)
    campaign = CampaignFactory(topic=topic, connection=connection)
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "done"
    times = sorted(smtp_sink.times)
    assert len(times) == 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 1.2 for gap in gaps), gaps


def test_successive_grants_are_spaced_by_the_rate_whoever_asks(db):
    from campaigns.throttle import rate_acquire

    connection = SendingConnectionFactory(name="shared", rate_per_second=50)
    started = time.monotonic()
    waits = [rate_acquire(connection) for _ in range(26)]
    elapsed = time.monotonic() - started
    assert waits[0] == 0.0
    assert elapsed >= 25 / 50 - 0.02, elapsed  # 25 intervals of 20 ms, whoever asks
