import csv
import io
from datetime import timedelta

from django.utils import timezone

from analytics import buffer
from analytics.ingest import Fact, ingest_facts
from analytics.models import CampaignTracking, SendingDomain
from analytics.tracking import click_token, open_token
from campaigns.models import Delivery
from tests.support.factories import (
    CampaignFactory,
    ReputationAlertFactory,
    SendingConnectionFactory,
    make_audience,
)

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0"


def _activity(client, campaign, links, deliveries):
    for d in deliveries:
        ingest_facts(
            [
                Fact(
                    uid=f"dl-{d.pk}",
                    kind="delivered",
                    occurred_at=timezone.now(),
                    delivery_id=d.pk,
                    esp="postmark",
                )
            ]
        )
    client.get(f"/t/o/{open_token(deliveries[0].pk)}", HTTP_USER_AGENT=CHROME)
    client.get(
        f"/t/o/{open_token(deliveries[1].pk)}",
        HTTP_USER_AGENT="Mozilla/5.0",
        REMOTE_ADDR="17.1.2.3",
    )
    client.get(f"/t/c/{click_token(deliveries[0].pk, links[1].pk)}", HTTP_USER_AGENT=CHROME)
    buffer.flush()


def test_the_campaign_report_shows_human_and_total_figures(viewer_client, sent_campaign):
    campaign, links, deliveries = sent_campaign
    _activity(viewer_client, campaign, links, deliveries)
    response = viewer_client.get(f"/analytics/campaigns/{campaign.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-metric="delivered">3<' in body
    assert 'data-metric="human-opens">1<' in body  # the Apple proxy open is not a human
    assert "all opens 2 (1 proxy)" in body
    assert 'data-metric="human-clicks">1<' in body
    assert "CTOR 100.0 %" in body
    assert "https://example.org/blog?x=1" in body and "series-chart" in body
    assert "gmail.com" in body  # top recipient domains


def test_the_report_reads_rollups_not_events(
    viewer_client, sent_campaign, django_assert_max_num_queries
):
    campaign, links, deliveries = sent_campaign
    _activity(viewer_client, campaign, links, deliveries)
    # A fixed number whatever the campaign's size (sent counters and exit-survey aggregates
    # included).
    with django_assert_max_num_queries(20):
        viewer_client.get(f"/analytics/campaigns/{campaign.pk}/")


def test_the_csv_export_has_one_row_per_recipient(editor_client, sent_campaign):
    campaign, links, deliveries = sent_campaign
    _activity(editor_client, campaign, links, deliveries)
    response = editor_client.get(f"/analytics/campaigns/{campaign.pk}/export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 3
    first = next(r for r in rows if r["email"] == deliveries[0].email)
    assert (first["human_opens"], first["human_clicks"], first["esp_status"]) == (
        "1",
        "1",
        "delivered",
    )


def test_a_formula_in_the_per_recipient_csv_goes_out_as_text(editor_client, sent_campaign):
    campaign, _links, deliveries = sent_campaign
    formula = "=cmd|' /C calc'!A0"
    Delivery.objects.filter(pk=deliveries[0].pk).update(email=formula)
    Delivery.objects.filter(pk=deliveries[1].pk).update(email="@SUM(1+1)")
    response = editor_client.get(f"/analytics/campaigns/{campaign.pk}/export.csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    emails = {r["email"] for r in rows}
    assert "'" + formula in emails and "'@SUM(1+1)" in emails
    assert formula not in emails


def test_a_viewer_reads_the_report_but_not_the_per_recipient_csv(viewer_client, sent_campaign):
    campaign = sent_campaign[0]
    report = viewer_client.get(f"/analytics/campaigns/{campaign.pk}/")
    assert report.status_code == 200 and b"series-chart" in report.content
    assert b"export.csv" not in report.content  # no button that answers 403
    assert viewer_client.get(f"/analytics/campaigns/{campaign.pk}/export.csv").status_code == 403


TRACKING = {"mode": "anonymous", "utm_source": "nl", "utm_medium": "email", "utm_campaign": "x"}


def test_viewers_cannot_change_tracking(viewer_client, sent_campaign):
    url = f"/analytics/campaigns/{sent_campaign[0].pk}/tracking/"
    assert viewer_client.post(url, TRACKING).status_code == 403
    assert not CampaignTracking.objects.exists()


def test_editors_set_tracking_mode_and_utm(editor_client, sent_campaign):
    campaign, _, _ = sent_campaign
    url = f"/analytics/campaigns/{campaign.pk}/tracking/"
    assert editor_client.post(url, TRACKING).status_code == 302
    tracking = CampaignTracking.objects.get(campaign=campaign)
    assert (tracking.mode, tracking.utm_source) == ("anonymous", "nl")
    assert editor_client.post(url, {"mode": "bogus"}).status_code == 302
    assert CampaignTracking.objects.get(campaign=campaign).mode == "anonymous"


def test_the_dashboard_shows_alerts_tiles_and_trends(viewer_client, sent_campaign):
    campaign, links, deliveries = sent_campaign
    _activity(viewer_client, campaign, links, deliveries)
    ReputationAlertFactory(
        scope="domain",
        key="news.example.com",
        metric="complaints",
        level="critical",
        rate=0.004,
        volume=1000,
        message="Complaint rate of news.example.com is 0.40 %",
    )
    response = viewer_client.get("/analytics/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "Complaint rate of news.example.com is 0.40 %" in body
    assert "news.example.com" in body and "growth-chart" in body and "trend-chart" in body
    assert campaign.name in body


def test_an_empty_dashboard_says_so(viewer_client):
    body = viewer_client.get("/analytics/").content.decode()
    assert "No campaign activity yet" in body


def test_admins_add_a_sending_domain_bad_input_is_explained(admin_client, settings):
    settings.DNS_NAMESERVERS = ["127.0.0.1:9"]  # nothing answers: every lookup fails fast
    response = admin_client.post(
        "/analytics/domains/add/", {"domain": "not a domain", "sending_ips": "1.2.3.999"}
    )
    assert response.status_code == 400
    assert b"Enter a domain name" in response.content
    assert b"is not an IP address" in response.content
    assert not SendingDomain.objects.exists()


def test_viewers_cannot_change_domains_or_run_the_sunset(viewer_client):
    assert viewer_client.post("/analytics/domains/add/", {"domain": "x.example"}).status_code == 403
    assert viewer_client.post("/analytics/hygiene/run/").status_code == 403
    assert viewer_client.get("/analytics/hygiene/").status_code == 200
    assert viewer_client.get("/analytics/domains/").status_code == 200


def test_the_hygiene_page_previews_before_running(admin_client, sent_campaign):
    from analytics.models import SunsetPolicy
    from subscribers.models import Subscriber

    Subscriber.objects.update(created_at=timezone.now() - timedelta(days=400))
    body = admin_client.get("/analytics/hygiene/").content
    assert b"No preview computed yet" in body
    # Running needs the policy enabled and a preview of the current settings.
    data = {"enabled": "on", "inactive_days": 180, "grace_days": 30}
    assert admin_client.post("/analytics/hygiene/policy/", data).status_code == 302
    body = admin_client.get("/analytics/hygiene/").content
    assert b'id="reengage-count">3<' in body and b'id="unsubscribe-count">0<' in body
    assert b"reader0@gmail.com" in body
    SunsetPolicy.objects.update(inactive_days=200)  # settings changed since the preview
    admin_client.post("/analytics/hygiene/run/")
    assert SunsetPolicy.objects.get().last_run_at is None
    assert admin_client.post("/analytics/hygiene/preview/").status_code == 302
    assert admin_client.post("/analytics/hygiene/run/").status_code == 302
    assert SunsetPolicy.objects.get().last_run_at is not None
    assert Subscriber.objects.filter(status="unsubscribed").count() == 0  # nobody was due


def test_a_subscriber_timeline_page_lists_deliveries_and_events(viewer_client, sent_campaign):
    campaign, links, deliveries = sent_campaign
    _activity(viewer_client, campaign, links, deliveries)
    url = f"/analytics/subscribers/{deliveries[0].subscriber_id}/timeline/"
    body = viewer_client.get(url).content.decode()
    assert 'data-kind="opened"' in body and 'data-kind="clicked"' in body
    assert 'data-kind="sent"' in body and 'data-kind="delivered"' in body
    fragment = viewer_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert fragment.lstrip().startswith('<div id="subscriber-timeline">')


def test_the_dashboard_states_the_configured_thresholds(viewer_client, settings, sent_campaign):
    settings.REPUTATION_COMPLAINT_WARN_BP = 10
    settings.REPUTATION_BOUNCE_CRITICAL_BP = 500
    campaign, links, deliveries = sent_campaign
    _activity(viewer_client, campaign, links, deliveries)
    body = viewer_client.get("/analytics/").content.decode()
    assert "complaints 0.1 % warning" in body and "/ 5.0 %" in body


def test_the_dashboard_says_how_many_hits_are_not_counted_yet(viewer_client, sent_campaign):
    _campaign, links, deliveries = sent_campaign
    viewer_client.get(f"/t/o/{open_token(deliveries[0].pk)}", HTTP_USER_AGENT=CHROME).getvalue()
    viewer_client.get(
        f"/t/c/{click_token(deliveries[1].pk, links[0].pk)}", HTTP_USER_AGENT=CHROME
    ).getvalue()
    body = " ".join(viewer_client.get("/analytics/").content.decode().split())
    assert "2 events (opens, clicks, ESP reports) not counted yet" in body
    buffer.flush()
    assert "not counted yet" not in viewer_client.get("/analytics/").content.decode()


def test_the_campaign_report_shows_the_exit_survey_answers_given_through_it(
    client, viewer_client, sent_campaign
):
    from core.recipient_links import UNSUBSCRIBE, recipient_token

    campaign, _, deliveries = sent_campaign
    report = f"/analytics/campaigns/{campaign.pk}/"
    assert "No exit-survey answer yet." in viewer_client.get(report).content.decode()
    for delivery, reasons, text in [
        (deliveries[0], ["too_many"], "Monthly is a lot"),
        (deliveries[1], ["too_many", "not_relevant"], ""),
    ]:
        token = recipient_token(
            UNSUBSCRIBE, subscriber_id=delivery.subscriber_id, delivery_id=delivery.pk
        )
        client.post(f"/r/u/{token}/")  # the page's Unsubscribe button, then the survey
        client.post(f"/r/u/{token}/survey", {"reasons": reasons, "other_text": text})
    body = viewer_client.get(report).content.decode()
    section = body[body.index('id="exit-survey"') :]
    assert "2 answers from people who unsubscribed through this campaign" in section
    assert '<td>I get too many emails</td><td class="text-end">2</td>' in section
    assert "<td>The content is not relevant to me</td>" in section
    assert "Monthly is a lot" in section


def test_a_campaign_sent_over_smtp_counts_the_servers_250_as_delivered(viewer_client, smtp_sink):
    """An SMTP server sends no delivery reports: the tile said "Delivered 0" for a campaign
    whose three messages all went out, and every bounce or complaint rate then divided by
    nothing (a single bounce read as 100 %)."""
    from analytics.models import DomainDaily
    from campaigns.pipeline import campaign_send_work
    from campaigns.services import campaign_start

    topic, _ = make_audience(3)
    make_audience(1, topic=topic, prefix="bad")  # refused 550 5.1.1 by the server
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "done"
    body = viewer_client.get(f"/analytics/campaigns/{campaign.pk}/").content.decode()
    assert 'data-metric="sent">3<' in body
    assert 'data-metric="delivered">3<' in body
    day = DomainDaily.objects.get(domain="sender.example")
    assert (day.delivered, day.bounced_hard) == (3, 1)  # a 25 % bounce rate, not 100 %
