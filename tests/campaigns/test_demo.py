from io import StringIO

from django.core.management import call_command

from campaigns.models import Campaign, Delivery
from templates_app.rendering import compile_version


def test_the_demo_has_a_draft_and_a_finished_campaign_with_deliveries_and_is_idempotent(db):
    call_command("seed_demo", stdout=StringIO())
    finished = Campaign.objects.get(name="October newsletter")
    assert finished.status == "finished" and finished.total > 0
    statuses = set(Delivery.objects.filter(campaign=finished).values_list("status", flat=True))
    assert statuses == {"sent", "failed", "skipped"}
    assert Campaign.objects.get(name="November newsletter").status == "draft"
    # One Link row per tracked link of the pinned template version.
    compiled = compile_version(finished.template_version, track_links=True)
    assert len(compiled.links) > 0
    assert finished.links.count() == len(compiled.links)
    call_command("seed_demo", stdout=StringIO())
    assert Campaign.objects.count() == 2
