"""Rows whose outcome is unknown: shown one by one with their Message-ID, decided row by row
or all at once through the campaign page, or settled by the campaign's policy."""

from datetime import timedelta

from django.utils import timezone

from campaigns.dispatch import dispatch_due
from campaigns.models import Campaign, Delivery
from campaigns.services import campaign_start
from tests.support.factories import CampaignFactory, TemplateFactory, TopicFactory, make_audience


def _with_unknown(n=3, **fields):
    topic, _ = make_audience(n)
    campaign = CampaignFactory(topic=topic, **fields)
    campaign_start(campaign=campaign)
    rows = list(Delivery.objects.filter(campaign=campaign).order_by("id"))
    for row in rows:
        Delivery.objects.filter(pk=row.pk).update(
            status="unknown",
            message_id=f"<d{row.pk}.c{campaign.pk}@sender.example>",
            claimed_at=timezone.now() - timedelta(hours=2),
            error="The connection was lost after the message was sent.",
        )
    return campaign, rows


def test_each_unknown_row_is_listed_with_its_message_id(db, viewer_client):
    campaign, rows = _with_unknown()
    page = viewer_client.get(f"/campaigns/{campaign.pk}/").content.decode()
    for row in rows:
        assert f"&lt;d{row.pk}.c{campaign.pk}@sender.example&gt;" in page
        assert row.email in page
    assert 'name="ids"' not in page  # a viewer reads, does not decide


def test_an_editor_decides_row_by_row(db, editor_client, editor_user):
    campaign, rows = _with_unknown()
    url = f"/campaigns/{campaign.pk}/resolve/"
    assert editor_client.post(url, {"decision": "accept", "ids": [rows[0].pk]}).status_code == 302
    assert editor_client.post(url, {"decision": "resend", "ids": [rows[1].pk]}).status_code == 302
    first, second, third = (Delivery.objects.get(pk=r.pk) for r in rows)
    assert (first.status, first.resolution, first.resolved_by) == ("sent", "accepted", editor_user)
    assert (second.status, second.resolution) == ("pending", "resent")
    assert third.status == "unknown" and third.resolution == ""
    # Nothing ticked: refused with a message, nothing changed.
    response = editor_client.post(url, {"decision": "accept"}, follow=True)
    assert "Tick the deliveries" in response.content.decode()
    assert Delivery.objects.get(pk=rows[2].pk).status == "unknown"
    editor_client.post(url, {"decision": "accept", "scope": "all"})
    assert Delivery.objects.get(pk=rows[2].pk).status == "sent"


def test_viewers_cannot_decide(db, viewer_client):
    campaign, rows = _with_unknown(1)
    url = f"/campaigns/{campaign.pk}/resolve/"
    assert viewer_client.post(url, {"decision": "accept", "scope": "all"}).status_code == 403
    assert Delivery.objects.get(pk=rows[0].pk).status == "unknown"


def test_the_policy_counts_rows_left_undecided_as_sent_and_says_so(db):
    _campaign, rows = _with_unknown(2, unknown_settle_hours=1)
    fresh = rows[1]
    Delivery.objects.filter(pk=fresh.pk).update(claimed_at=timezone.now())
    assert dispatch_due()["settled"] == 1
    old = Delivery.objects.get(pk=rows[0].pk)
    assert (old.status, old.resolution) == ("sent", "accepted_by_policy")
    assert "policy" in old.error
    assert Delivery.objects.get(pk=fresh.pk).status == "unknown"  # not yet its time


def test_with_no_policy_a_person_always_decides(db):
    campaign, rows = _with_unknown(1)
    assert dispatch_due()["settled"] == 0
    assert Campaign.objects.get(pk=campaign.pk).status == "running"
    assert Delivery.objects.get(pk=rows[0].pk).status == "unknown"


def test_the_policy_is_chosen_on_the_campaign_form(db, editor_client):
    from templates_app.models import Template

    topic = TopicFactory(name="News", slug="news")
    template = TemplateFactory()
    response = editor_client.post(
        "/campaigns/new/",
        {
            "name": "Policy",
            "topics": [topic.pk],
            "template": template.pk,
            "from_email": "news@sender.example",
            "max_consecutive_failures": 20,
            "unknown_settle_hours": 12,
            "unknown_settle_action": "resend",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    campaign = Campaign.objects.get(name="Policy")
    assert (campaign.unknown_settle_hours, campaign.unknown_settle_action) == (12, "resend")
    assert Template.objects.count() == 1
