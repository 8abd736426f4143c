"""Opening a captured message in the sandbox inbox records nothing (issue 13, item 7a): its
open pixel and tracked links would otherwise count as the recipient's open and click, or
write "opened by a security scanner" into their timeline."""

import time

import pytest

from analytics import buffer
from analytics.models import Event
from campaigns.models import Campaign, SandboxMessage
from campaigns.pipeline import campaign_send_work
from campaigns.services import campaign_start
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    TemplateFactory,
    make_audience,
)


@pytest.fixture
def clean_buffer():
    r = buffer.client()
    if r is not None:
        r.delete(buffer.BUFFER_KEY, buffer.PROCESSING_KEY, buffer.LOCK_KEY)
    yield


@pytest.fixture
def short_lived_connections(monkeypatch):
    # The live server thread must not keep a connection open past the test: it would stop the
    # test database from being dropped at the end of the session.
    from django.db import connections

    monkeypatch.setitem(connections["default"].settings_dict, "CONN_MAX_AGE", 0)


def _captured(site_url: str) -> SandboxMessage:
    """A campaign really sent through a test-mode connection, its links pointing back at
    ``site_url`` so that a browser following one stays on the test server."""
    topic, _ = make_audience(1)
    connection = SendingConnectionFactory(
        name="sandbox",
        backend="django.core.mail.backends.locmem.EmailBackend",
        sending_domain="sender.example",
        test_mode=True,
    )
    template = TemplateFactory(
        html_body=f'<html><body><p>Hi. <a id="news" href="{site_url}/t/ping.gif?news=1">'
        "The news</a></p></body></html>"
    )
    campaign = CampaignFactory(topic=topic, connection=connection, template=template)
    campaign_start(campaign=campaign)
    # A transactional test's start really queues the kick: the session's worker, when one
    # runs, may be the one that sends it. Either way it is sent once.
    deadline = time.monotonic() + 60
    while Campaign.objects.get(pk=campaign.pk).status != Campaign.Status.FINISHED:
        assert time.monotonic() < deadline, "the sandbox campaign did not finish"
        campaign_send_work(campaign_id=campaign.pk)
        time.sleep(0.1)
    message = SandboxMessage.objects.get(campaign=campaign)
    # What was captured is what recipients get: the pixel and the click redirect.
    assert f"{site_url}/t/o/" in message.html and f"{site_url}/t/c/" in message.html
    return message


def test_the_sandbox_view_serves_the_message_without_its_tracking_urls(viewer_client, settings, db):
    settings.SITE_URL = "https://mail.example.com"
    message = _captured(settings.SITE_URL)
    page = viewer_client.get(f"/campaigns/sandbox/{message.pk}/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "/t/o/" not in body.split('id="raw"')[0]
    assert "/t/c/" not in body.split('id="raw"')[0]
    # The link still shows where it goes (the Link's own URL, escaped into the srcdoc).
    assert "https://mail.example.com/t/ping.gif?news=1" in body


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_viewing_and_clicking_in_the_sandbox_records_no_event(
    live_server, chromium, viewer_user, settings, clean_buffer, short_lived_connections
):
    settings.SITE_URL = live_server.url
    message = _captured(live_server.url)
    page = chromium.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", viewer_user.username)
    page.fill("input[name=password]", "pw-" + viewer_user.username)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(f"{live_server.url}/**")
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{live_server.url}/campaigns/sandbox/{message.pk}/")
    page.wait_for_load_state("networkidle")
    frame = page.frame_locator("iframe[title='HTML part']")
    with page.expect_request(lambda request: "/t/ping.gif" in request.url):
        frame.locator("#news").click()
    page.wait_for_load_state("networkidle")
    assert [url for url in requested if "/t/o/" in url or "/t/c/" in url] == []
    assert buffer.pending() == 0
    buffer.flush()
    assert not Event.objects.exists()
