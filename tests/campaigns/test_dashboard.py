import pytest
from django.urls import reverse

from campaigns.models import Campaign, Delivery, SandboxMessage
from campaigns.pipeline import campaign_send_work
from campaigns.services import campaign_start
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    TemplateFactory,
    make_audience,
)


def test_the_list_shows_status_and_progress(viewer_client, smtp_sink):
    topic, _ = make_audience(3)
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    campaign_send_work(campaign_id=campaign.pk)
    page = viewer_client.get(reverse("campaigns:list")).content.decode()
    assert "Launch" in page and "Finished" in page and "3 sent / 3" in page


def test_the_wizard_creates_a_draft_and_counts_the_audience_live(editor_client):
    topic, _ = make_audience(4)
    template = TemplateFactory()
    count = editor_client.get(reverse("campaigns:audience_count"), {"topics": [topic.pk]})
    assert count.content.decode() == "4 recipients"
    response = editor_client.post(
        reverse("campaigns:create"),
        {
            "name": "Spring",
            "topics": [topic.pk],
            "template": template.pk,
            "from_email": "news@sender.example",
            "from_name": "Us",
            "tags": "a, b",
            "track_links": "on",
            "max_consecutive_failures": 10,
        },
    )
    campaign = Campaign.objects.get(name="Spring")
    assert response.status_code == 302 and response.url == reverse(
        "campaigns:detail", args=[campaign.pk]
    )
    assert campaign.tags == ["a", "b"] and list(campaign.topics.all()) == [topic]
    detail = editor_client.get(response.url).content.decode()
    assert "<strong>4</strong> recipients now" in detail


def test_the_wizard_refuses_a_campaign_without_an_audience(editor_client):
    response = editor_client.post(
        reverse("campaigns:create"),
        {
            "name": "Nobody",
            "template": TemplateFactory().pk,
            "from_email": "a@b.example",
            "max_consecutive_failures": 10,
        },
    )
    assert response.status_code == 200
    assert "Choose at least one topic or a segment" in response.content.decode()
    assert not Campaign.objects.filter(name="Nobody").exists()


def test_pause_resume_and_cancel_are_posts_that_move_the_state(editor_client):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="running")
    assert editor_client.get(reverse("campaigns:pause", args=[campaign.pk])).status_code == 405
    editor_client.post(reverse("campaigns:pause", args=[campaign.pk]))
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"
    editor_client.post(reverse("campaigns:resume", args=[campaign.pk]))
    assert Campaign.objects.get(pk=campaign.pk).status == "running"
    editor_client.post(reverse("campaigns:cancel", args=[campaign.pk]))
    assert Campaign.objects.get(pk=campaign.pk).status == "cancelled"
    response = editor_client.post(reverse("campaigns:resume", args=[campaign.pk]), follow=True)
    assert "cannot become running" in response.content.decode()


def test_viewers_cannot_change_campaigns(viewer_client):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="running")
    assert viewer_client.post(reverse("campaigns:pause", args=[campaign.pk])).status_code == 403
    assert Campaign.objects.get(pk=campaign.pk).status == "running"


def test_the_progress_partial_polls_while_running(viewer_client, smtp_sink):
    topic, _ = make_audience(2)
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    page = viewer_client.get(reverse("campaigns:progress", args=[campaign.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in page
    assert '<strong data-testid="sent">0</strong> sent / <span data-testid="total">2</span>' in page


def test_duplicate_makes_a_new_draft_with_the_same_settings(editor_client):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="finished", tags=["x"])
    response = editor_client.post(reverse("campaigns:duplicate", args=[campaign.pk]))
    copy = Campaign.objects.exclude(pk=campaign.pk).get()
    assert response.url == reverse("campaigns:detail", args=[copy.pk])
    assert copy.status == "draft" and copy.tags == ["x"] and list(copy.topics.all()) == [topic]
    assert copy.name == "Launch (copy)"


def test_the_delivery_list_shows_status_and_errors(viewer_client, smtp_sink):
    topic, _ = make_audience(1)
    make_audience(1, topic=topic, prefix="bad")
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    campaign_send_work(campaign_id=campaign.pk)
    url = reverse("campaigns:deliveries", args=[campaign.pk])
    page = viewer_client.get(url, {"status": "failed"}).content.decode()
    assert "bad0@example.org" in page and "550" in page and "user0@example.org" not in page


def test_a_test_send_lands_in_the_sandbox_inbox_only_in_test_mode(editor_client, smtp_sink):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(
        topic=topic, connection=SendingConnectionFactory(sink=smtp_sink), test_mode=True
    )
    response = editor_client.post(
        reverse("campaigns:test_send", args=[campaign.pk]),
        {"addresses": "seed@qa.example\nboss@qa.example"},
        follow=True,
    )
    assert "captured in the sandbox inbox" in response.content.decode()
    assert smtp_sink.messages == []
    assert Campaign.objects.get(pk=campaign.pk).seed_addresses == "seed@qa.example\nboss@qa.example"
    message = SandboxMessage.objects.get(to="seed@qa.example")
    assert message.subject.startswith("[TEST]") and message.is_test_send
    inbox = editor_client.get(reverse("campaigns:sandbox")).content.decode()
    assert "seed@qa.example" in inbox
    page = editor_client.get(reverse("campaigns:sandbox_message", args=[message.pk]))
    body = page.content.decode()
    assert 'sandbox=""' in body and "List-Unsubscribe" in body and "MIME-Version" in body


def test_a_test_send_on_a_live_connection_reaches_the_seed_list_only(editor_client, smtp_sink):
    topic, _ = make_audience(3)
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    editor_client.post(
        reverse("campaigns:test_send", args=[campaign.pk]), {"addresses": "seed@qa.example"}
    )
    assert smtp_sink.recipients() == ["seed@qa.example"]
    assert not Delivery.objects.exists()


def test_bad_seed_addresses_are_refused_clearly(editor_client):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic)
    response = editor_client.post(
        reverse("campaigns:test_send", args=[campaign.pk]),
        {"addresses": "not-an-address"},
        follow=True,
    )
    assert "is not an email address" in response.content.decode()


def test_the_preflight_page_lists_findings_and_blocks_scheduling(editor_client):
    topic, _ = make_audience(1)
    template = TemplateFactory(html_body="<p>Hi {{ nickname }}</p>")
    campaign = CampaignFactory(topic=topic, template=template)
    page = editor_client.get(reverse("campaigns:preflight", args=[campaign.pk])).content.decode()
    assert "blocking finding" in page and "nickname" in page
    response = editor_client.post(
        reverse("campaigns:schedule", args=[campaign.pk]),
        {"kind": "now", "timezone": "UTC"},
        follow=True,
    )
    assert "Pre-flight found blocking problems" in response.content.decode()
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"


def test_an_admin_can_override_blocking_findings(admin_client, admin_user):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(
        topic=topic, template=TemplateFactory(html_body="<p>{{ nickname }}</p>")
    )
    admin_client.post(
        reverse("campaigns:schedule", args=[campaign.pk]),
        {"kind": "now", "timezone": "UTC", "override": "on"},
    )
    campaign.refresh_from_db()
    assert campaign.status == "scheduled" and campaign.preflight_override_by == admin_user


@pytest.mark.parametrize("name", ["connections", "connection_create"])
def test_connections_are_for_admins(editor_client, name):
    assert editor_client.get(reverse(f"campaigns:{name}")).status_code == 403


def test_an_admin_configures_a_connection_with_a_warm_up_plan(admin_client):
    response = admin_client.post(
        reverse("campaigns:connection_create"),
        {
            "name": "Mailgun",
            "backend": "anymail.backends.test.EmailBackend",
            "options": "{}",
            "domain_caps": '{"Gmail.com": 600}',
            "warmup_plan": "[500, 1000]",
        },
    )
    assert response.status_code == 302
    from campaigns.models import SendingConnection

    connection = SendingConnection.objects.get(name="Mailgun")
    assert connection.domain_caps == {"gmail.com": 600} and connection.warmup_plan == [500, 1000]
    bad = admin_client.post(
        reverse("campaigns:connection_create"),
        {
            "name": "Nope",
            "backend": "no.such.Backend",
            "options": "{}",
            "domain_caps": "{}",
            "warmup_plan": "[]",
        },
    )
    assert "cannot be imported" in bad.content.decode()


def test_the_list_costs_the_same_number_of_queries_for_one_or_many_campaigns(
    viewer_client, smtp_sink, django_assert_max_num_queries
):
    topic, _ = make_audience(2)
    for i in range(5):
        campaign = CampaignFactory(
            topic=topic,
            name=f"c{i}",
            connection=SendingConnectionFactory(sink=smtp_sink, name=f"s{i}"),
        )
        campaign_start(campaign=campaign)
    with django_assert_max_num_queries(8):
        page = viewer_client.get(reverse("campaigns:list")).content.decode()
    assert page.count("0 sent / 2") == 5
