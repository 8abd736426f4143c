"""A recipient manages their subscription from a message an SMTP server really received."""

import importlib
import re

import pytest
from django.apps import apps

from campaigns.pipeline import campaign_send_work
from campaigns.services import campaign_start
from preferences.models import ExitSurveyResponse
from subscribers.models import ConsentRecord, Subscriber, Subscription
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    SubscriberFactory,
    SubscriptionFactory,
    TemplateFactory,
    TopicFactory,
)
from tests.support.smtp import html_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HTML = (
    "<html><body><p>Hello {{ first_name }}</p>"
    '<p><a href="{{ preferences_url }}">Manage your preferences</a></p></body></html>'
)


@pytest.fixture
def received(live_server, settings, smtp_sink, monkeypatch):
    """Send a real campaign through the SMTP sink; return (subscriber, message, campaign)."""
    settings.SITE_URL = live_server.url
    # This test sends in-process, with the live server's SITE_URL. A transactional start
    # really queues its kick: the session's Celery worker, once an earlier test started it,
    # could take the campaign first and build every link on its own SITE_URL (port 8000).
    monkeypatch.setattr("campaigns.services.campaign_kick_on_commit", lambda campaign_id: None)
    # Transactional tests flush the tables, data-migration rows included: put the default
    # exit-survey reasons back.
    importlib.import_module("preferences.migrations.0002_default_reasons").add_reasons(apps, None)
    weekly = TopicFactory(name="Weekly", slug="weekly", public_name="Weekly letter")
    events = TopicFactory(name="Events", slug="events", public_name="Events near you")
    ada = SubscriberFactory(
        email="ada@example.org", first_name="Ada", status=Subscriber.Status.ACTIVE
    )
    for topic in (weekly, events):
        SubscriptionFactory(subscriber=ada, topic=topic)
    campaign = CampaignFactory(
        topic=weekly,
        connection=SendingConnectionFactory(sink=smtp_sink),
        template=TemplateFactory(html_body=HTML),
    )
    campaign_start(campaign=campaign)
    campaign_send_work(campaign_id=campaign.pk)
    (message,) = smtp_sink.wait_for(1)
    return ada, message, campaign


def _active_topics(subscriber) -> set[str]:
    return set(
        Subscription.objects.filter(subscriber=subscriber, status="active").values_list(
            "topic__slug", flat=True
        )
    )


def test_topics_pause_unsubscribe_survey_and_coming_back(received, chromium):
    ada, message, campaign = received
    preferences = re.search(r'href="([^"]*/r/p/[^"]+)"', html_of(message)).group(1)
    page = chromium.new_page(viewport={"width": 390, "height": 844})  # a phone
    try:
        page.goto(preferences)
        assert page.get_by_role("heading", name="Your email preferences").is_visible()
        assert page.get_by_role("switch", name=re.compile("Weekly letter")).is_checked()

        page.get_by_role("switch", name=re.compile("Events near you")).uncheck()
        page.get_by_role("button", name="Save topics").click()
        page.get_by_text("Your topics are saved.").wait_for()
        assert _active_topics(ada) == {"weekly"}

        page.get_by_role("button", name="Pause all email for 1 month").click()
        page.get_by_text("All email is paused until").wait_for()
        ada.refresh_from_db()
        assert ada.paused_until is not None

        page.get_by_role("button", name="Unsubscribe from all emails").click()
        page.get_by_role("heading", name="You are unsubscribed").wait_for()
        ada.refresh_from_db()
        assert ada.status == Subscriber.Status.UNSUBSCRIBED

        page.get_by_label("I get too many emails").check()
        page.get_by_label("Anything else you would like to tell us?").fill("Weekly is a lot")
        page.get_by_role("button", name="Send my answer").click()
        page.get_by_role("heading", name="Thank you").wait_for()
        answer = ExitSurveyResponse.objects.get()
        assert answer.reasons == ["too_many"]
        assert answer.campaign_id == campaign.pk  # the campaign whose link was used

        page.get_by_role("button", name="Subscribe again").click()
        page.get_by_text("Welcome back! You are subscribed again.").wait_for()
        ada.refresh_from_db()
        assert ada.status == Subscriber.Status.ACTIVE
        assert _active_topics(ada) == {"weekly"}  # what they had when they left
        assert ConsentRecord.objects.filter(subscriber=ada, where="preferences").exists()
    finally:
        page.close()


def test_one_click_post_with_no_cookies_and_a_get_that_changes_nothing(received, chromium):
    from playwright.sync_api import sync_playwright  # noqa: F401 - chromium fixture started it

    ada, message, _ = received
    one_click = message["List-Unsubscribe"].split(",")[0].strip(" <>")
    context = chromium.new_context()  # a fresh context: no cookie of any kind
    try:
        # A GET (what a link scanner does) shows a page and changes nothing.
        response = context.request.get(one_click)
        assert response.status == 200
        ada.refresh_from_db()
        assert ada.status == Subscriber.Status.ACTIVE

        # RFC 8058: the mailbox provider POSTs this exact body, no cookie, no CSRF token.
        response = context.request.post(
            one_click,
            data="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            max_redirects=0,
        )
        assert response.status == 200
        assert context.cookies() == []
        ada.refresh_from_db()
        assert ada.status == Subscriber.Status.UNSUBSCRIBED
    finally:
        context.close()


def test_a_tampered_link_shows_a_clear_page_and_changes_nothing(received, chromium):
    ada, message, _ = received
    preferences = re.search(r'href="([^"]*/r/p/[^"]+)"', html_of(message)).group(1)
    tampered = preferences.rstrip("/")[:-4] + "AAAA/"
    page = chromium.new_page()
    try:
        response = page.goto(tampered)
        assert response.status == 400
        assert page.get_by_role("heading", name="This link does not work").is_visible()
        assert page.get_by_text("Nothing was changed.").is_visible()
    finally:
        page.close()
    assert _active_topics(ada) == {"weekly", "events"}
