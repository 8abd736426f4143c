from datetime import UTC, datetime

import pytest
from django.utils import timezone

from campaigns.dispatch import dispatch_due
from campaigns.models import Campaign, CampaignTransitionError, Delivery
from campaigns.scheduling import local_to_utc, next_weekly_occurrence
from campaigns.services import campaign_schedule
from tests.support.factories import CampaignFactory, SendingConnectionFactory, make_audience

# A naive datetime reaching a DateTimeField makes Django warn: fail instead (the "once" time is
# a local date and time now, never an instant stored from a wall-clock reading).
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

TUESDAY = 1


def test_weekly_tuesday_ten_in_paris_keeps_its_local_hour_across_the_spring_dst_change():
    # 2026-03-29 Europe/Paris springs forward (UTC+1 -> UTC+2).
    before = next_weekly_occurrence(
        weekday=TUESDAY, hour=10, tz_name="Europe/Paris", after=datetime(2026, 3, 20, tzinfo=UTC)
    )
    after = next_weekly_occurrence(weekday=TUESDAY, hour=10, tz_name="Europe/Paris", after=before)
    assert before == datetime(2026, 3, 24, 9, 0, tzinfo=UTC)  # 10:00 CET
    assert after == datetime(2026, 3, 31, 8, 0, tzinfo=UTC)  # 10:00 CEST


def test_and_across_the_autumn_dst_change():
    # 2026-10-25 Europe/Paris falls back (UTC+2 -> UTC+1).
    first = next_weekly_occurrence(
        weekday=TUESDAY, hour=10, tz_name="Europe/Paris", after=datetime(2026, 10, 21, tzinfo=UTC)
    )
    second = next_weekly_occurrence(weekday=TUESDAY, hour=10, tz_name="Europe/Paris", after=first)
    assert first == datetime(2026, 10, 27, 9, 0, tzinfo=UTC)
    assert second == datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    assert (second - first).total_seconds() == 7 * 86400


def test_a_time_in_the_spring_gap_moves_past_it_and_a_repeated_one_takes_the_first():
    # 02:30 does not exist in New York on 2026-03-08; 01:30 exists twice on 2026-11-01.
    assert local_to_utc(datetime(2026, 3, 8, 2, 30), "America/New_York") == datetime(
        2026, 3, 8, 7, 30, tzinfo=UTC
    )
    assert local_to_utc(datetime(2026, 11, 1, 1, 30), "America/New_York") == datetime(
        2026, 11, 1, 5, 30, tzinfo=UTC
    )


def test_once_at_a_local_time_is_scheduled_in_utc(db):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(
        topic=topic,
        schedule_kind="once",
        schedule_timezone="Asia/Tokyo",
        send_at_local=datetime(2026, 12, 1, 9, 0),
    )
    campaign_schedule(campaign=campaign, now=datetime(2026, 11, 1, tzinfo=UTC))
    campaign.refresh_from_db()
    assert campaign.status == "scheduled"
    assert campaign.next_run_at == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def test_the_dispatcher_starts_due_campaigns_once_and_leaves_future_ones(db):
    topic, _ = make_audience(3)
    due = CampaignFactory(topic=topic, name="due")
    later = CampaignFactory(topic=topic, name="later")
    now = timezone.now()
    Campaign.objects.filter(pk=due.pk).update(status="scheduled", next_run_at=now)
    Campaign.objects.filter(pk=later.pk).update(
        status="scheduled", next_run_at=now + timezone.timedelta(hours=1)
    )
    first = dispatch_due(now=now)
    second = dispatch_due(now=now)  # e.g. a beat restart running the tick again
    assert first["started"] == [due.pk]
    assert second["started"] == []
    assert Delivery.objects.filter(campaign=due).count() == 3
    assert Campaign.objects.get(pk=later.pk).status == "scheduled"


def test_a_recurring_campaign_creates_one_child_per_occurrence_only_new_since_last(db):
    from subscribers.models import Subscriber

    topic, _ = make_audience(2)
    Subscriber.objects.update(created_at=datetime(2026, 3, 1, tzinfo=UTC))
    parent = CampaignFactory(
        topic=topic,
        name="Weekly",
        schedule_kind="recurring",
        recurring_weekday=TUESDAY,
        recurring_hour=10,
        schedule_timezone="Europe/Paris",
        only_new_since_last=True,
    )
    t1 = datetime(2026, 3, 24, 9, 0, tzinfo=UTC)
    Campaign.objects.filter(pk=parent.pk).update(status="scheduled", next_run_at=t1)
    report = dispatch_due(now=t1)
    (child,) = Campaign.objects.filter(parent=parent)
    assert report["occurrences"] == [child.pk]
    assert child.status == "running"
    assert Delivery.objects.filter(campaign=child).count() == 2
    parent.refresh_from_db()
    assert parent.status == "scheduled"
    assert parent.next_run_at == datetime(2026, 3, 31, 8, 0, tzinfo=UTC)  # DST-aware

    # Someone joins; the next occurrence goes to them only.
    make_audience(1, topic=topic, prefix="newcomer")
    Subscriber.objects.filter(email="newcomer0@example.org").update(
        created_at=datetime(2026, 3, 27, tzinfo=UTC)
    )
    dispatch_due(now=datetime(2026, 3, 31, 8, 0, tzinfo=UTC))
    second = Campaign.objects.filter(parent=parent).exclude(pk=child.pk).get()
    assert list(Delivery.objects.filter(campaign=second).values_list("email", flat=True)) == [
        "newcomer0@example.org"
    ]


def test_scheduling_is_refused_while_blocking_findings_remain_unless_an_admin_overrides(
    db, admin_user, editor_user
):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic)
    campaign.from_email = ""
    campaign.save()
    with pytest.raises(CampaignTransitionError, match="From address"):
        campaign_schedule(campaign=campaign, user=editor_user)
    with pytest.raises(CampaignTransitionError, match="Only an admin"):
        campaign_schedule(campaign=campaign, user=editor_user, override=True)
    campaign_schedule(campaign=campaign, user=admin_user, override=True)
    campaign.refresh_from_db()
    assert campaign.status == "scheduled" and campaign.preflight_override_by == admin_user


def test_the_dispatcher_is_one_periodic_task_in_django_celery_beat(db):
    from django_celery_beat.models import PeriodicTask

    tasks = PeriodicTask.objects.filter(task="campaigns.tasks.campaigns_dispatch")
    assert tasks.count() == 1 and tasks.get().interval.every == 10
    assert not PeriodicTask.objects.filter(clocked__isnull=False).exists()


def test_at_the_recipients_local_time_each_message_waits_for_its_own_hour(db, smtp_sink):
    from zoneinfo import ZoneInfo

    from subscribers.models import Subscriber

    topic, subs = make_audience(3)
    Subscriber.objects.filter(pk=subs[0].pk).update(timezone="Asia/Tokyo")
    Subscriber.objects.filter(pk=subs[1].pk).update(timezone="America/New_York")
    Subscriber.objects.filter(pk=subs[2].pk).update(timezone="Not/AZone")  # falls back
    campaign = CampaignFactory(
        topic=topic,
        connection=SendingConnectionFactory(sink=smtp_sink),
        local_send_hour=9,
        schedule_timezone="Europe/Paris",
    )
    from campaigns.services import campaign_start

    campaign_start(campaign=campaign)
    now = timezone.now()
    for sub, tz in [
        (subs[0], "Asia/Tokyo"),
        (subs[1], "America/New_York"),
        (subs[2], "Europe/Paris"),
    ]:
        at = Delivery.objects.get(campaign=campaign, subscriber=sub).not_before
        local = at.astimezone(ZoneInfo(tz))
        assert (local.hour, local.minute) == (9, 0)
        assert now <= at <= now + timezone.timedelta(days=1)
    from campaigns.pipeline import campaign_send_work

    assert campaign_send_work(campaign_id=campaign.pk) == "idle"
    assert smtp_sink.messages == []  # nobody's 9 o'clock is "now"
