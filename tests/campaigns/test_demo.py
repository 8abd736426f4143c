from io import StringIO

from django.core.management import call_command

from campaigns.models import Campaign, Delivery


def test_the_demo_has_a_draft_and_a_finished_campaign_with_deliveries_and_is_idempotent(db):
    call_command("seed_demo", stdout=StringIO())
    finished = Campaign.objects.get(name="October newsletter")
    assert finished.status == "finished" and finished.total > 0
    statuses = set(Delivery.objects.filter(campaign=finished).values_list("status", flat=True))
    assert statuses == {"sent", "failed", "skipped"}
    assert Campaign.objects.get(name="November newsletter").status == "draft"
    assert finished.links.count() == 2
    call_command("seed_demo", stdout=StringIO())
    assert Campaign.objects.count() == 2
