"""The dashboard in a real browser: the wizard's live audience count and the live progress bar
(htmx) — what only a browser shows."""

import pytest
from django.contrib.auth import get_user_model

from campaigns.models import Delivery
from campaigns.services import campaign_start
from tests.support.browser import launch, wait_until
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    TemplateFactory,
    TopicFactory,
    make_audience,
)


@pytest.fixture
def page(live_server, editor_user, monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", editor_user.username)
        page.fill("input[name=password]", "pw-" + editor_user.username)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(f"{live_server.url}/**")
        try:
            yield page
        finally:
            browser.close()


# serialized_rollback: the role groups created by a migration survive the flush between tests.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_the_wizard_counts_the_audience_live_as_topics_are_ticked(page, live_server):
    make_audience(3)

    daily = TopicFactory(name="Daily", slug="daily")
    make_audience(2, topic=daily, prefix="d")
    TemplateFactory()
    page.goto(f"{live_server.url}/campaigns/new/")
    count = page.locator("#audience-count")
    wait_until(page, "document.querySelector('#audience-count').textContent.includes('0')")
    page.get_by_label("Weekly").check()
    wait_until(page, "document.querySelector('#audience-count').textContent === '3 recipients'")
    page.get_by_label("Daily").check()
    wait_until(page, "document.querySelector('#audience-count').textContent === '5 recipients'")
    assert count.text_content() == "5 recipients"


def test_the_progress_bar_moves_on_its_own_while_the_campaign_runs(
    page, live_server, smtp_sink, own_queue
):
    topic, _ = make_audience(4)
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    assert "0 sent / 4" in page.inner_text("#progress")
    # Sending happens elsewhere (here: directly); the page polls and shows it without reload.
    Delivery.objects.filter(campaign=campaign).update(status="sent")
    wait_until(
        page,
        "document.querySelector('#progress').textContent.includes('4 sent / 4')",
        timeout=10000,
    )
    assert get_user_model().objects.count() == 1
