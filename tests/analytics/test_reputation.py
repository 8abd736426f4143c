from django.utils import timezone

from analytics.ingest import Fact, ingest_facts
from analytics.models import ReputationAlert
from campaigns.models import Campaign
from tests.support.factories import create_sent_campaign


def _feed(deliveries, kind, n, *, start=0, **fields):
    ingest_facts(
        [
            Fact(
                uid=f"{kind}-{d.pk}",
                kind=kind,
                occurred_at=timezone.now(),
                delivery_id=d.pk,
                esp="postmark",
                **fields,
            )
            for d in deliveries[start : start + n]
        ]
    )


def test_complaints_over_the_critical_line_pause_the_domains_running_campaigns(db, settings):
    settings.REPUTATION_MIN_VOLUME = 100
    _, _, deliveries = create_sent_campaign(name="Finished", n=400)
    running, _, _ = create_sent_campaign(name="Running", status="running", n=1)
    other, _, _ = create_sent_campaign(
        name="Elsewhere", status="running", n=1, domain="other.example"
    )
    _feed(deliveries, "delivered", 400)
    assert not ReputationAlert.objects.exists()
    _feed(deliveries, "complained", 1)  # 0.25 %: warning
    alert = ReputationAlert.objects.get(scope="domain")
    assert (alert.metric, alert.level) == ("complaints", "warning")
    running.refresh_from_db()
    assert running.status == "running"
    _feed(deliveries, "complained", 1, start=1)  # 0.5 %: critical
    alert.refresh_from_db()
    assert alert.level == "critical" and running.pk in alert.paused_campaigns
    running.refresh_from_db()
    other.refresh_from_db()
    assert running.status == Campaign.Status.PAUSED
    assert "news.example.com" in running.status_reason
    assert other.status == Campaign.Status.RUNNING
    assert ReputationAlert.objects.filter(resolved_at__isnull=True, scope="domain").count() == 1


def test_hard_bounces_over_five_percent_pause_the_running_campaign_itself(db, settings):
    settings.REPUTATION_MIN_VOLUME = 50
    campaign, _, deliveries = create_sent_campaign(
        name="Bouncy", status="running", n=100, domain="bouncy.example"
    )
    _feed(deliveries, "delivered", 94)
    _feed(deliveries, "bounced", 6, start=94, bounce_type="hard")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    levels = set(ReputationAlert.objects.values_list("scope", "metric", "level"))
    assert ("campaign", "hard_bounces", "critical") in levels
    assert ("domain", "hard_bounces", "critical") in levels


def test_small_volumes_raise_no_alert(db, settings):
    settings.REPUTATION_MIN_VOLUME = 100
    _, _, deliveries = create_sent_campaign(n=10)
    _feed(deliveries, "delivered", 10)
    _feed(deliveries, "complained", 1)
    assert not ReputationAlert.objects.exists()


def test_a_hard_bounce_rate_exactly_on_the_critical_line_pauses(db, settings):
    # The default line: 5 % (500 bp). 5 hard bounces in 100 is on it, and the line is inclusive.
    settings.REPUTATION_MIN_VOLUME = 100
    assert settings.REPUTATION_BOUNCE_CRITICAL_BP == 500
    campaign, _, deliveries = create_sent_campaign(
        name="On the line", status="running", n=100, domain="line.example"
    )
    _feed(deliveries, "delivered", 95)
    _feed(deliveries, "bounced", 4, start=95, bounce_type="hard")  # 4 / 99: a warning
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING
    _feed(deliveries, "bounced", 1, start=99, bounce_type="hard")  # 5 / 100 = 5.00 %
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    alert = ReputationAlert.objects.get(scope="campaign", metric="hard_bounces")
    assert (alert.level, alert.rate, alert.volume) == ("critical", 0.05, 100)


def test_a_complaint_rate_exactly_on_the_critical_line_pauses(db, settings):
    settings.REPUTATION_MIN_VOLUME = 100
    settings.REPUTATION_COMPLAINT_WARN_BP = 50
    settings.REPUTATION_COMPLAINT_CRITICAL_BP = 100  # 1 %
    campaign, _, deliveries = create_sent_campaign(
        name="One in a hundred", status="running", n=100, domain="complaints.example"
    )
    _feed(deliveries, "delivered", 100)
    _feed(deliveries, "complained", 1)  # 1 / 100 = 1.00 %
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    levels = set(ReputationAlert.objects.values_list("scope", "metric", "level"))
    assert ("domain", "complaints", "critical") in levels
    assert ("campaign", "complaints", "critical") in levels
