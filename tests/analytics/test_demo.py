import io

from django.core.management import call_command

from analytics.models import CampaignStats, Event


def test_the_demo_fills_the_reports_and_a_second_run_adds_nothing(db):
    call_command("seed_demo", stdout=io.StringIO())
    events = Event.objects.count()
    assert events > 0
    stats = CampaignStats.objects.get(campaign__name="October newsletter")
    assert stats.delivered > 0 and stats.unique_human_opens > 0 and stats.opens_proxy > 0
    call_command("seed_demo", stdout=io.StringIO())
    assert Event.objects.count() == events
