"""Every way of leaving from a campaign's message counts once against that campaign: in its
report, its export, its rollups, and the subscriber's timelines (issue 13, item 3).

The recipient's side goes through the public URLs as a browser or a mailbox provider would
(forms read from the pages they were served with, CSRF enforced); the marketer's side is read
through the dashboard: the report page, its CSV export, the subscriber's pages.
"""

import base64
import csv
import html
import io
import json
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from analytics.models import CampaignStats, DeliveryActivity, Event
from analytics.services import campaign_rollups_rebuild
from campaigns.models import Delivery
from core.recipient_links import PREFERENCES, UNSUBSCRIBE, recipient_token
from preferences.models import ExitSurveyResponse
from subscribers.models import Subscriber, Suppression
from tests.support.factories import CampaignFactory, DeliveryFactory

FORM_RE = re.compile(r"<form\b(?P<attrs>[^>]*)>(?P<body>.*?)</form>", re.S)
ATTR_RE = re.compile(r'(\w[\w-]*)="([^"]*)"')
TAG_RE = re.compile(r"<(button)\b([^>]*)>(.*?)</button>|<(input)\b([^>]*)>()", re.S)


@pytest.fixture
def campaign(db):
    return CampaignFactory(bare=True, name="Spring sale", status="finished")


@pytest.fixture
def delivery(campaign, subscriber):
    return DeliveryFactory(
        campaign=campaign,
        subscriber=subscriber,
        status=Delivery.Status.SENT,
        sent_at=timezone.now(),
        message_id=f"<d1.c{campaign.pk}@news.example.com>",
    )


def _unsubscribe_url(delivery) -> str:
    token = recipient_token(
        UNSUBSCRIBE, subscriber_id=delivery.subscriber_id, delivery_id=delivery.pk
    )
    return reverse("preferences:unsubscribe", args=[token])


def _center_url(delivery) -> str:
    token = recipient_token(
        PREFERENCES, subscriber_id=delivery.subscriber_id, delivery_id=delivery.pk
    )
    return reverse("preferences:center", args=[token])


def _browser() -> Client:
    return Client(enforce_csrf_checks=True, HTTP_USER_AGENT="Mozilla/5.0 (X11) Firefox/128.0")


def _submit(browser: Client, page_url: str, button: str, data: dict | None = None):
    """Load the page, find the form whose button says ``button``, and post it as a browser
    would: its hidden fields (the CSRF token), its checked boxes, the button's own value."""
    page = browser.get(page_url)
    assert page.status_code == 200
    for form in FORM_RE.finditer(page.content.decode()):
        if button not in form["body"]:
            continue
        action = html.unescape(dict(ATTR_RE.findall(form["attrs"])).get("action") or page_url)
        fields: dict[str, list] = {}
        for match in TAG_RE.findall(form["body"]):
            tag, attrs, text = match[:3] if match[0] else match[3:]
            a = dict(ATTR_RE.findall(attrs))
            if "name" not in a:
                continue
            if tag == "button" and button not in text:
                continue
            if a.get("type") == "checkbox" and " checked" not in attrs:
                continue
            fields.setdefault(a["name"], []).append(html.unescape(a.get("value", "")))
        fields.update(data or {})
        return browser.post(action, fields)
    raise AssertionError(f"no form with a {button!r} button on {page_url}")


def _one_click(delivery):
    # RFC 8058: the mailbox provider's POST, no cookie, no CSRF token.
    return Client(enforce_csrf_checks=True).post(
        _unsubscribe_url(delivery),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )


def _report_unsubscribes(dashboard: Client, campaign) -> int:
    page = dashboard.get(reverse("analytics:campaign", args=[campaign.pk]))
    assert page.status_code == 200
    return int(re.search(r'data-metric="unsubscribes">(\d+)<', page.content.decode())[1])


def _export_unsubscribed_at(dashboard: Client, campaign, email: str) -> str:
    response = dashboard.get(reverse("analytics:campaign-csv", args=[campaign.pk]))
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    return next(r for r in rows if r["email"] == email)["unsubscribed_at"]


def _timeline(dashboard: Client, subscriber) -> str:
    """The subscriber's page and its detailed timeline, as the marketer reads them."""
    detail = dashboard.get(reverse("subscribers:detail", args=[subscriber.pk]))
    events = dashboard.get(reverse("analytics:subscriber-timeline", args=[subscriber.pk]))
    assert detail.status_code == events.status_code == 200
    return html.unescape(detail.content.decode() + events.content.decode())


def _counted_once(dashboard, campaign, subscriber) -> None:
    assert _report_unsubscribes(dashboard, campaign) == 1
    assert _export_unsubscribed_at(dashboard, campaign, subscriber.email) != ""
    stats = CampaignStats.objects.get(campaign=campaign)
    assert stats.unsubscribed == 1


def test_the_one_click_post_counts_in_the_report_the_export_and_the_timeline(
    editor_client, campaign, delivery, subscriber
):
    assert _one_click(delivery).status_code == 200
    _counted_once(editor_client, campaign, subscriber)
    timeline = _timeline(editor_client, subscriber)
    assert "Unsubscribed from all email, from “Spring sale” (through one-click unsubscribe)" in (
        timeline
    )


def test_the_unsubscribe_pages_button_counts_once(editor_client, campaign, delivery, subscriber):
    response = _submit(_browser(), _unsubscribe_url(delivery), "Unsubscribe")
    assert response.status_code == 302 and "/survey" in response["Location"]
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    _counted_once(editor_client, campaign, subscriber)
    assert "(through the unsubscribe page)" in _timeline(editor_client, subscriber)


def test_one_click_then_the_page_is_one_unsubscribe(editor_client, campaign, delivery, subscriber):
    browser = _browser()
    page = browser.get(_unsubscribe_url(delivery))  # the page opened from the footer link
    _one_click(delivery)
    _one_click(delivery)  # providers retry
    # Then the button of the page opened earlier (what its form posts: no fields).
    assert b"Unsubscribe" in page.content
    assert browser.post(_unsubscribe_url(delivery)).status_code == 302
    _counted_once(editor_client, campaign, subscriber)
    assert Event.objects.filter(kind="unsubscribed", campaign_id=campaign.pk).count() == 1


def test_unsubscribing_from_everything_in_the_preference_center_counts(
    editor_client, campaign, delivery, subscriber
):
    response = _submit(_browser(), _center_url(delivery), "Unsubscribe from all emails")
    assert response.status_code == 302
    _counted_once(editor_client, campaign, subscriber)


def test_a_pause_counts_as_leaving_and_shows_on_the_subscribers_page(
    editor_client, campaign, delivery, subscriber
):
    response = _submit(
        _browser(), _center_url(delivery), "Pause all email for 3 months", {"months": "3"}
    )
    assert response.status_code == 302
    subscriber.refresh_from_db()
    assert subscriber.paused_until > timezone.now()
    # A pause is counted as leaving, but it is no unsubscribe from everything.
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert not Suppression.objects.exists()
    _counted_once(editor_client, campaign, subscriber)
    timeline = _timeline(editor_client, subscriber)
    assert "Paused all email for 3 months, from “Spring sale”" in timeline
    assert f"Paused until {timezone.localtime(subscriber.paused_until):%Y-%m-%d}" in timeline
    # Resuming is on the timeline, and the leave stays counted.
    _submit(_browser(), _center_url(delivery), "Resume now")
    assert "Resumed email before the end of a pause" in _timeline(editor_client, subscriber)
    assert _report_unsubscribes(editor_client, campaign) == 1


def test_turning_a_topic_off_counts_and_turning_it_back_on_is_on_the_timeline(
    editor_client, campaign, delivery, subscriber, topics
):
    weekly, events = topics
    browser = _browser()
    # Untick "Weekly" and save: the browser sends only the box still ticked.
    response = _submit(browser, _center_url(delivery), "Save topics", {"topics": [events.pk]})
    assert response.status_code == 302
    _counted_once(editor_client, campaign, subscriber)
    assert "Unsubscribed from Weekly, from “Spring sale”" in _timeline(editor_client, subscriber)
    _submit(browser, _center_url(delivery), "Save topics", {"topics": [weekly.pk, events.pk]})
    assert "Subscribed again to Weekly" in _timeline(editor_client, subscriber)
    # Two changes from the same message: one recipient lost for the campaign.
    _submit(browser, _center_url(delivery), "Save topics", {"topics": []})
    assert _report_unsubscribes(editor_client, campaign) == 1


def test_the_mailto_unsubscribe_counts_against_the_campaign_in_its_header(
    editor_client, campaign, delivery, subscriber, settings
):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:s3cret"}
    settings.UNSUBSCRIBE_MAILTO = "unsubscribe@news.example.com"
    token = recipient_token(UNSUBSCRIBE, subscriber_id=subscriber.pk, delivery_id=delivery.pk)
    # Postmark's inbound webhook, as in tests/preferences/test_inbound_mailto.py.
    payload = {
        "From": subscriber.email,
        "FromFull": {"Email": subscriber.email, "Name": "Ada", "MailboxHash": ""},
        "To": "unsubscribe@news.example.com",
        "ToFull": [{"Email": "unsubscribe@news.example.com", "Name": "", "MailboxHash": ""}],
        "Subject": f"unsubscribe {token}",
        "MessageID": "73e6d360-66eb-11e1-8e72-a8904824019b",
        "Date": "Fri, 1 Aug 2026 16:45:32 -04:00",
        "TextBody": "",
        "HtmlBody": "",
        "Headers": [],
        "Attachments": [],
    }
    response = Client().post(
        reverse("anymail:postmark_inbound_webhook"),
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"hook:s3cret").decode(),
    )
    assert response.status_code == 200
    _counted_once(editor_client, campaign, subscriber)
    assert "(through an unsubscribe email)" in _timeline(editor_client, subscriber)


def test_coming_back_is_on_the_timeline_and_leaving_again_still_counts_once(
    editor_client, campaign, delivery, subscriber
):
    browser = _browser()
    _submit(browser, _unsubscribe_url(delivery), "Unsubscribe")
    _submit(browser, _center_url(delivery), "Subscribe again")
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert "Subscribed again, from “Spring sale”" in _timeline(editor_client, subscriber)
    _one_click(delivery)
    _counted_once(editor_client, campaign, subscriber)
    assert Event.objects.filter(kind="unsubscribed", campaign_id=campaign.pk).count() == 2


def test_the_report_and_the_exit_survey_credit_the_same_campaign(
    editor_client, campaign, delivery, subscriber
):
    browser = _browser()
    survey = _submit(browser, _unsubscribe_url(delivery), "Unsubscribe")["Location"]
    _submit(browser, survey, "Send my answer", {"reasons": ["too_many"]})
    assert ExitSurveyResponse.objects.get().campaign_id == campaign.pk
    _counted_once(editor_client, campaign, subscriber)


def test_a_rebuild_of_the_rollups_reproduces_the_unsubscribes(
    editor_client, campaign, delivery, subscriber, topics
):
    _submit(_browser(), _center_url(delivery), "Pause all email for 1 month", {"months": "1"})
    _one_click(delivery)
    before = DeliveryActivity.objects.get(delivery=delivery).unsubscribed_at
    CampaignStats.objects.filter(campaign=campaign).update(unsubscribed=0)
    DeliveryActivity.objects.all().delete()
    campaign_rollups_rebuild(campaign_id=campaign.pk)
    assert DeliveryActivity.objects.get(delivery=delivery).unsubscribed_at == before
    _counted_once(editor_client, campaign, subscriber)


def test_leaving_from_a_link_not_from_a_campaign_is_on_the_timeline_only(
    editor_client, campaign, subscriber, unsub_token
):
    _one_click_plain = Client().post(
        reverse("preferences:unsubscribe", args=[unsub_token]), {"List-Unsubscribe": "One-Click"}
    )
    assert _one_click_plain.status_code == 200
    assert "Unsubscribed from all email (through one-click unsubscribe)" in _timeline(
        editor_client, subscriber
    )
    assert not CampaignStats.objects.filter(unsubscribed__gt=0).exists()
