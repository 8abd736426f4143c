"""Open tracking does not depend on click tracking (issue 13, item 7b): a message with no
tracked link still carries its open pixel, and the pixel records the recipient's open."""

import re

import pytest

from analytics import buffer
from analytics.models import Event
from campaigns.models import Delivery, SandboxMessage
from campaigns.pipeline import campaign_send_work
from campaigns.services import campaign_start
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    TemplateFactory,
    make_audience,
)

NO_LINKS = "<html><body><h1>Hello {{ first_name }}</h1><p>No links today.</p></body></html>"


@pytest.fixture(autouse=True)
def clean_buffer(db):
    r = buffer.client()
    if r is not None:
        r.delete(buffer.BUFFER_KEY, buffer.PROCESSING_KEY, buffer.LOCK_KEY)


def _send(settings, **campaign_fields) -> SandboxMessage:
    settings.SITE_URL = "https://mail.example.com"
    topic, _ = make_audience(1)
    connection = SendingConnectionFactory(
        name="sandbox",
        backend="django.core.mail.backends.locmem.EmailBackend",
        sending_domain="sender.example",
        test_mode=True,
    )
    template = campaign_fields.pop("template", None) or TemplateFactory(html_body=NO_LINKS)
    campaign = CampaignFactory(
        topic=topic, connection=connection, template=template, **campaign_fields
    )
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "done"
    return SandboxMessage.objects.get(campaign=campaign)


def _pixel(message: SandboxMessage) -> str | None:
    found = re.search(r'<img src="https://mail\.example\.com(/t/o/[^"]+)"', message.html)
    return found[1] if found else None


def test_a_message_without_links_carries_the_pixel_and_it_records_the_open(client, settings):
    message = _send(settings)
    pixel = _pixel(message)
    assert pixel is not None
    response = client.get(pixel, HTTP_USER_AGENT="Mozilla/5.0 (X11) Thunderbird/128.0")
    assert response.status_code == 200
    buffer.flush()
    delivery = Delivery.objects.get(campaign=message.campaign)
    assert Event.objects.filter(kind="opened", delivery_id=delivery.pk).count() == 1


def test_links_left_untracked_keep_the_pixel(settings):
    message = _send(settings, track_links=False, template=TemplateFactory())
    assert 'href="https://example.com/a"' in message.html
    assert _pixel(message) is not None


def test_no_pixel_when_open_tracking_is_off(settings):
    assert _pixel(_send(settings, track_opens=False)) is None
