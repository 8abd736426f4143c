"""What recipients and marketers see, in a real browser (Debian's chromium via Playwright)."""

import pytest
from playwright.sync_api import sync_playwright

from analytics import buffer
from analytics.tracking import click_token, open_token
from tests.support.browser import launch, wait_until
from tests.support.factories import LinkFactory, create_sent_campaign

# serialized_rollback: the flush after these tests must not re-create content types that
# the next serialized_rollback test restores itself (duplicate keys otherwise).
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the test
    # itself are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = launch(p)
        try:
            yield browser
        finally:
            browser.close()


def test_a_recipient_clicking_lands_on_the_destination_and_a_forged_link_does_not(
    live_server, browser
):
    campaign, _links, deliveries = create_sent_campaign()
    destination = LinkFactory(
        campaign=campaign, index=9, url=f"{live_server.url}/t/ping.gif?from=newsletter"
    )
    page = browser.new_page()
    page.goto(f"{live_server.url}/t/c/{click_token(deliveries[0].pk, destination.pk)}")
    assert page.url == f"{live_server.url}/t/ping.gif?from=newsletter"
    token = click_token(deliveries[0].pk, destination.pk)
    response = page.goto(f"{live_server.url}/t/c/{token[:-4]}AAAA")
    assert response.status == 404
    assert page.url.startswith(f"{live_server.url}/t/c/")
    assert "This link is not valid" in page.content()
    # The image of an opened email: a real GIF the browser decodes as 1x1.
    page.set_content(f'<img id="px" src="{live_server.url}/t/o/{open_token(deliveries[0].pk)}">')
    wait_until(page, "document.getElementById('px').complete")
    assert page.evaluate("[px.naturalWidth, px.naturalHeight]") == [1, 1]
    assert buffer.pending() == 2  # the click and the open, nothing for the forged link


def test_the_report_draws_its_charts(live_server, browser):
    from django.contrib.auth import get_user_model
    from django.test import Client

    # A superuser is an admin whatever the role groups.
    admin_user = get_user_model().objects.create_superuser("boss", password="pw-boss")
    campaign, links, deliveries = create_sent_campaign()

    client = Client()
    for d in deliveries:
        client.get(f"/t/o/{open_token(d.pk)}", HTTP_USER_AGENT="Mozilla/5.0 (X11) Chrome/126.0")
    client.get(
        f"/t/c/{click_token(deliveries[0].pk, links[0].pk)}",
        HTTP_USER_AGENT="Mozilla/5.0 (X11) Chrome/126.0",
    )
    buffer.flush()
    page = browser.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", admin_user.username)
    page.fill("input[name=password]", "pw-" + admin_user.username)
    page.click("button[type=submit], input[type=submit]")
    page.goto(f"{live_server.url}/analytics/campaigns/{campaign.pk}/")
    assert page.inner_text("[data-metric=human-opens]") == "3"
    assert page.evaluate("Chart.getChart('series-chart').data.datasets[0].data") == [3]
    page.goto(f"{live_server.url}/analytics/")
    assert page.evaluate("!!Chart.getChart('growth-chart') && !!Chart.getChart('trend-chart')")
