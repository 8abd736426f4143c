import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import buffer
from analytics.models import CampaignStats, DeliveryActivity, Event
from analytics.tracking import click_token, open_token
from analytics.tracking_views import PIXEL
from tests.support.factories import (
    CampaignTrackingFactory,
    LinkFactory,
)

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


def test_the_pixel_is_a_real_gif_with_no_cache_headers(client, sent_campaign):
    _, _, deliveries = sent_campaign
    response = client.get(f"/t/o/{open_token(deliveries[0].pk)}", HTTP_USER_AGENT=CHROME)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"
    body = response.getvalue()
    assert body == PIXEL and body.startswith(b"GIF89a")
    assert "no-store" in response["Cache-Control"] and "no-cache" in response["Cache-Control"]
    assert response["Pragma"] == "no-cache"


def test_a_tampered_open_token_still_gets_the_pixel_and_records_nothing(client, sent_campaign):
    _, _, deliveries = sent_campaign
    token = open_token(deliveries[0].pk)
    response = client.get(f"/t/o/{token[:-2]}xx")
    assert response.status_code == 200 and response.getvalue() == PIXEL
    assert buffer.pending() == 0


def test_the_pixel_and_the_redirect_answer_even_when_redis_is_down(
    client, sent_campaign, settings, caplog
):
    _, links, deliveries = sent_campaign
    settings.TRACKING_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get(f"/t/o/{open_token(deliveries[0].pk)}")
    assert response.status_code == 200 and response.getvalue() == PIXEL
    response = client.get(f"/t/c/{click_token(deliveries[0].pk, links[1].pk)}")
    assert response.status_code == 302 and response["Location"] == "https://example.org/blog?x=1"
    response.getvalue()
    assert "tracking hit not recorded" in caplog.text


def test_a_click_redirects_to_the_link_row_url_only(client, sent_campaign):
    _, links, deliveries = sent_campaign
    response = client.get(f"/t/c/{click_token(deliveries[0].pk, links[1].pk)}")
    assert response.status_code == 302
    assert response["Location"] == "https://example.org/blog?x=1"


def test_a_tampered_click_token_gets_a_safe_page_not_a_redirect(client, sent_campaign):
    _, links, deliveries = sent_campaign
    token = click_token(deliveries[0].pk, links[0].pk)
    delivery, _link, mac = token.split(".")
    forged = f"{delivery}.{int(links[1].pk) + 1000:x}.{mac}"
    for bad in (forged, token[:-3] + "abc", "https%3A%2F%2Fevil.example", "x"):
        response = client.get(f"/t/c/{bad}")
        assert response.status_code == 404
        assert "Location" not in response
        assert b"This link is not valid" in response.content
    assert buffer.pending() == 0


def test_a_valid_token_for_a_deleted_link_gets_the_safe_page(client, sent_campaign):
    _, links, deliveries = sent_campaign
    token = click_token(deliveries[0].pk, links[0].pk)
    links[0].delete()
    response = client.get(f"/t/c/{token}")
    assert response.status_code == 404 and "Location" not in response


def test_utm_parameters_of_the_campaign_are_added_to_the_destination(client, sent_campaign):
    campaign, links, deliveries = sent_campaign
    CampaignTrackingFactory(
        campaign=campaign, utm_source="newsletter", utm_medium="email", utm_campaign="spring"
    )
    response = client.get(f"/t/c/{click_token(deliveries[0].pk, links[1].pk)}")
    assert response["Location"] == (
        "https://example.org/blog?x=1&utm_source=newsletter&utm_medium=email&utm_campaign=spring"
    )


def test_tracking_requests_do_not_touch_the_database_once_the_link_is_known(client, sent_campaign):
    _, links, deliveries = sent_campaign
    url = f"/t/c/{click_token(deliveries[0].pk, links[0].pk)}"
    client.get(url)  # reads the Link row once per process
    with CaptureQueriesContext(connection) as queries:
        client.get(url, HTTP_USER_AGENT=CHROME)
        client.get(f"/t/o/{open_token(deliveries[0].pk)}", HTTP_USER_AGENT=CHROME)
    assert len(queries) == 0
    assert buffer.pending() == 3
    assert Event.objects.count() == 0


def test_head_requests_are_answered_and_counted_as_scanners(client, sent_campaign):
    campaign, links, deliveries = sent_campaign
    response = client.head(
        f"/t/c/{click_token(deliveries[0].pk, links[0].pk)}", HTTP_USER_AGENT=CHROME
    )
    assert response.status_code == 302
    buffer.flush()
    event = Event.objects.get()
    assert (event.kind, event.classification, event.method) == ("clicked", "scanner", "HEAD")
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.clicks, stats.clicks_human, stats.clicks_scanner) == (1, 0, 1)


def test_post_is_refused_on_the_tracking_endpoints(client, sent_campaign):
    _, _, deliveries = sent_campaign
    assert client.post(f"/t/o/{open_token(deliveries[0].pk)}").status_code == 405


def test_without_redis_hits_are_written_directly(client, settings, sent_campaign):
    settings.TRACKING_REDIS_URL = None
    _campaign, _links, deliveries = sent_campaign
    client.get(f"/t/o/{open_token(deliveries[0].pk)}", HTTP_USER_AGENT=CHROME)
    assert Event.objects.filter(kind="opened", classification="human").count() == 1
    assert DeliveryActivity.objects.get(delivery=deliveries[0]).human_opens == 1


@pytest.mark.parametrize("mode", ["off", "anonymous"])
def test_tracking_modes_record_nothing_or_no_identity(client, sent_campaign, mode):
    campaign, links, deliveries = sent_campaign
    CampaignTrackingFactory(campaign=campaign, mode=mode)
    client.get(f"/t/o/{open_token(deliveries[0].pk)}", HTTP_USER_AGENT=CHROME)
    response = client.get(
        f"/t/c/{click_token(deliveries[0].pk, links[0].pk)}", HTTP_USER_AGENT=CHROME
    )
    assert response.status_code == 302
    buffer.flush()
    stats = CampaignStats.objects.filter(campaign=campaign).first()
    if mode == "off":
        assert Event.objects.count() == 0 and stats is None
    else:
        assert Event.objects.count() == 2
        assert not Event.objects.exclude(delivery_id=None).exists()
        assert not Event.objects.exclude(subscriber_id=None).exists()
        assert not DeliveryActivity.objects.exists()
        assert (stats.opens, stats.clicks, stats.unique_human_opens) == (1, 1, 0)


@pytest.mark.parametrize("mode", ["individual", "off"])
def test_the_click_redirect_ignores_every_query_parameter(client, sent_campaign, mode):
    campaign, links, deliveries = sent_campaign
    CampaignTrackingFactory(campaign=campaign, mode=mode)
    token = click_token(deliveries[0].pk, links[1].pk)
    query = (
        "url=https%3A%2F%2Fevil.example%2F&next=%2F%2Fevil.example&redirect=javascript:alert(1)"
        "&to=https://evil.example&x=2&utm_source=evil&l=1&d=2"
    )
    response = client.get(f"/t/c/{token}?{query}")
    assert response.status_code == 302
    assert response["Location"] == "https://example.org/blog?x=1"
    # Nor does anything after the token.
    response = client.get(f"/t/c/{token}/https://evil.example/")
    assert response.status_code == 404 and "Location" not in response


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "ftp://files.example.org/x",
        "mailto:someone@example.org",
        "//evil.example/path",
        "/relative/path",
        "evil.example",
    ],
)
@pytest.mark.parametrize("mode", ["individual", "off"])
def test_a_link_that_is_not_http_or_https_is_never_redirected_to(client, sent_campaign, url, mode):

    campaign, _links, deliveries = sent_campaign
    CampaignTrackingFactory(campaign=campaign, mode=mode)
    # Not through the template compiler (it only tracks http(s)): a row made some other way.
    link = LinkFactory(campaign=campaign, index=7, url=url)
    response = client.get(f"/t/c/{click_token(deliveries[0].pk, link.pk)}")
    assert response.status_code == 404
    assert "Location" not in response
    assert b"This link is not valid" in response.content


def test_an_uppercase_https_link_is_still_redirected(client, sent_campaign):

    campaign, _links, deliveries = sent_campaign
    link = LinkFactory(campaign=campaign, index=8, url="HTTPS://Shop.example.org/x")
    response = client.get(f"/t/c/{click_token(deliveries[0].pk, link.pk)}")
    assert response.status_code == 302 and response["Location"] == "HTTPS://Shop.example.org/x"
