"""The pre-flight page on blocklists, over loopback zones: a sending IP on an abuse list
blocks, one on a policy list warns, every domain the mail links to (a subdomain by its
registered domain) is asked once and blocks when listed, with the list and its removal page;
a list that could not be asked is information, never a listing."""

import dns.rdatatype
import pytest
from django.urls import reverse

from campaigns.models import Campaign
from tests.analytics.dns_server import FixedZoneServer
from tests.analytics.test_blocklists import ZONE, ZONES
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    SendingDomainFactory,
    TemplateFactory,
    make_audience,
)
from tests.support.smtp import free_port

LINKS = (
    '<p>Hi {{ first_name|default:"there" }}, <a href="https://www.spammy.example/offer">buy</a>,'
    ' <a href="https://news.tracked.co.uk/a">read</a> <a href="https://news.tracked.co.uk/b">'
    'more</a>, <img src="https://cdn.clean.example/logo.png" alt="logo"></p>'
)


@pytest.fixture
def zone(settings):
    for name, value in ZONES.items():
        setattr(settings, name, value)
    asked = []
    with FixedZoneServer(ZONE) as server:
        answer = server.answer

        def counting(query):
            question = query.question[0]
            asked.append(f"{question.name.to_text()} {dns.rdatatype.to_text(question.rdtype)}")
            return answer(query)

        server.answer = counting
        server.asked = asked
        settings.DNS_NAMESERVERS = [f"127.0.0.1:{server.port}"]
        yield server


def _campaign(html=LINKS) -> Campaign:
    connection = SendingConnectionFactory(name="esp", sending_domain="sender.example")
    topic, _ = make_audience(1)
    return CampaignFactory(
        topic=topic, template=TemplateFactory(html_body=html), connection=connection
    )


def _findings(client, campaign) -> str:
    response = client.get(reverse("campaigns:preflight", args=[campaign.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_a_sending_ip_on_an_abuse_list_blocks_with_the_list_and_its_removal_page(
    editor_client, zone
):
    SendingDomainFactory(domain="sender.example", sending_ips="192.0.2.1")
    page = _findings(editor_client, _campaign(html="<p>No links</p>"))
    assert "blocklist.ip" in page
    assert "The sending IP 192.0.2.1 (of sender.example) is listed on Spamhaus ZEN" in page
    assert "SBL: a known spam source" in page and "Listed by SBL, see" in page
    assert "How to get delisted: Fix the cause first" in page
    assert 'href="https://check.spamhaus.org/results/?query=192.0.2.1"' in page
    assert "192.0.2.1 (of sender.example) is listed on SpamCop" in page
    assert "2 blocking findings" in page


def test_a_sending_ip_on_a_policy_list_only_warns(editor_client, zone):
    SendingDomainFactory(domain="sender.example", sending_ips="192.0.2.2, 192.0.2.3")
    page = _findings(editor_client, _campaign(html="<p>No links</p>"))
    assert "blocklist.ip_policy" in page
    assert "192.0.2.2 (of sender.example) is on Spamhaus ZEN&#x27;s policy list" in page
    assert "PBL (listed by Spamhaus)" in page
    assert "192.0.2.3" not in page
    assert "No blocking finding" in page


def test_a_listed_link_domain_blocks_with_its_list_and_removal_page(editor_client, zone):
    page = _findings(editor_client, _campaign())
    assert "blocklist.domain" in page
    assert "The link domain spammy.example (of www.spammy.example) is listed on Spamhaus DBL" in (
        page
    )
    assert "Spamhaus DBL lists it as a spam domain." in page
    assert 'href="https://check.spamhaus.org/results/?query=spammy.example"' in page
    # A subdomain is judged by its registered domain, asked once for its two links.
    assert "The link domain tracked.co.uk (of news.tracked.co.uk) is listed" in page
    assert zone.asked.count("tracked.co.uk.dbl.spamhaus.org. A") == 1
    assert "news.tracked.co.uk.dbl.spamhaus.org. A" not in zone.asked
    assert "clean.example.dbl.spamhaus.org. A" in zone.asked  # images are links too
    assert "clean.example is listed" not in page and "blocklist.unchecked" not in page


def test_a_sending_ip_spamhaus_refuses_to_look_up_is_information_not_a_listing(editor_client, zone):
    SendingDomainFactory(domain="sender.example", sending_ips="192.0.2.4")
    page = _findings(editor_client, _campaign(html="<p>No links</p>"))
    assert "blocklist.unchecked" in page and "1 blocklist lookup could not be made" in page
    assert "192.0.2.4 on Spamhaus ZEN: Could not check: Spamhaus refused the query" in page
    assert "blocklist.ip" not in page.replace("blocklist.unchecked", "")
    assert "No blocking finding" in page


def test_no_dns_answer_leaves_every_list_unchecked_and_blocks_nothing(editor_client, settings):
    settings.DNS_NAMESERVERS = [f"127.0.0.1:{free_port()}"]  # nobody listens there
    settings.DNS_LIFETIME_SECONDS = 1  # each unanswered question waits this long
    SendingDomainFactory(domain="sender.example", sending_ips="192.0.2.1")
    page = _findings(editor_client, _campaign())
    assert "blocklist.unchecked" in page
    assert "192.0.2.1 on Spamhaus ZEN: Could not check: no DNS answer" in page
    assert "spammy.example on Spamhaus DBL: Could not check" in page
    assert "blocklist.ip<" not in page and "blocklist.domain<" not in page
