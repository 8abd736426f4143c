from django.urls import reverse

from campaigns.models import Campaign
from tests.support.api import error_of
from tests.support.factories import (
    CampaignFactory,
    EventFactory,
    SegmentFactory,
    SendingConnectionFactory,
    SubscriberFactory,
    TemplateFactory,
    TopicFactory,
)


def test_a_draft_is_made_scheduled_paused_and_cancelled_through_the_campaign_services(api):
    news = TopicFactory(slug="news")
    SubscriberFactory(active=True, topics=[news])
    template = TemplateFactory()
    connection = SendingConnectionFactory()
    response = api.post(
        "/campaigns",
        {
            "name": "Launch",
            "template_id": template.pk,
            "topics": ["news"],
            "from_email": "news@sender.example",
            "connection_id": connection.pk,
        },
    )
    assert response.status_code == 201, response.content
    draft = response.json()
    assert draft["status"] == "draft" and draft["topics"] == ["news"]
    # The campaign form's own rule: an audience is needed.
    no_audience = api.post("/campaigns", {"name": "X", "template_id": template.pk})
    assert no_audience.status_code == 422 and "audience" in error_of(no_audience)["message"]
    scheduled = api.post(
        f"/campaigns/{draft['id']}/schedule",
        {"kind": "once", "send_at_local": "2031-03-01T09:00", "timezone": "Europe/Paris"},
    )
    assert scheduled.status_code == 200, scheduled.content
    assert scheduled.json()["status"] == "scheduled"
    assert scheduled.json()["next_run_at"].startswith("2031-03-01T08:00")
    # The state machine refuses what the dashboard refuses.
    pause = api.post(f"/campaigns/{draft['id']}/pause")
    assert pause.status_code == 409 and error_of(pause)["code"] == "transition"
    cancelled = api.post(f"/campaigns/{draft['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert Campaign.objects.get(pk=draft["id"]).status == "cancelled"
    stats = api.get(f"/campaigns/{draft['id']}/stats").json()
    assert stats["progress"]["sent"] == 0 and "open_rate" in stats["rates"]


def test_a_running_campaign_pauses_and_resumes(api):
    campaign = CampaignFactory(sent=True)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.RUNNING)
    assert api.post(f"/campaigns/{campaign.pk}/pause").json()["status"] == "paused"
    assert api.post(f"/campaigns/{campaign.pk}/resume").json()["status"] == "running"
    stats = api.get(f"/campaigns/{campaign.pk}/stats").json()
    assert stats["progress"]["sent"] == 3


def test_the_preview_renders_a_subscribers_merge_values(api):
    template = TemplateFactory()
    ann = SubscriberFactory(first_name="Ann")
    preview = api.get(f"/templates/{template.pk}/preview", {"subscriber": ann.pk}).json()
    assert preview["subject"] == "News for Ann" and "Hello Ann" in preview["html"]
    sample = api.get(f"/templates/{template.pk}/preview").json()
    assert sample["subscriber_id"] is None and "Hello" in sample["html"]
    missing = api.get(f"/templates/{template.pk}/preview", {"subscriber": 999999})
    assert missing.status_code == 404 and error_of(missing)["field"] == "subscriber"


def test_the_api_preview_is_the_dashboards_preview(api, viewer_client):
    """One function renders both: the same subscriber gives the same subject, HTML and text."""
    template = TemplateFactory()
    ann = SubscriberFactory(first_name="Ann")
    url = reverse("templates_app:preview", args=[template.pk])
    page = viewer_client.get(url, {"email": ann.email})
    shown = page.context["message"]
    preview = api.get(f"/templates/{template.pk}/preview", {"subscriber": ann.pk}).json()
    assert "Ann" in shown.subject
    assert (preview["subject"], preview["html"], preview["text"]) == (
        shown.subject,
        shown.html,
        shown.text,
    )
    sample = api.get(f"/templates/{template.pk}/preview").json()
    assert sample["html"] == viewer_client.get(url).context["message"].html
    # A version that is not a number is a missing page, not a server error.
    assert viewer_client.get(url, {"version": "abc"}).status_code == 404


def test_segments_count_and_list_their_members_live(api):
    news = TopicFactory(slug="news")
    members = [SubscriberFactory(active=True, topics=[news]) for _ in range(3)]
    SubscriberFactory()
    segment = SegmentFactory(
        rules={"match": "all", "conditions": [{"field": "topic", "op": "in", "value": ["news"]}]}
    )
    assert api.get(f"/segments/{segment.pk}/count").json() == {"count": 3}
    page = api.get(f"/segments/{segment.pk}/members", {"limit": 2}).json()
    rest = api.get(
        f"/segments/{segment.pk}/members", {"limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert [r["id"] for r in page["data"] + rest["data"]] == [m.pk for m in members]
    assert rest["next_cursor"] is None


def test_events_come_after_a_cursor(api):
    first = [EventFactory(kind="delivered"), EventFactory(kind="opened")]
    page = api.get("/events").json()
    assert [e["id"] for e in page["data"]] == [e.pk for e in first]
    later = EventFactory(kind="clicked")
    since = api.get("/events", {"cursor": page["next_cursor"]}).json()
    assert [e["id"] for e in since["data"]] == [later.pk]
    assert api.get("/events", {"cursor": since["next_cursor"]}).json()["data"] == []
    opened = api.get("/events", {"kind": "opened"}).json()["data"]
    assert [e["kind"] for e in opened] == ["opened"]
