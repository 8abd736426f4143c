"""The pre-flight page on the sender: open reputation alerts of the sending domain, the From
domain's failing DNS checks, a From domain nobody configured, a mailbox provider's domain."""

import pytest
from django.urls import reverse
from django.utils import timezone

from analytics.guardrail import alert_acknowledge
from campaigns.models import Campaign
from tests.analytics.dns_server import FixedZoneServer
from tests.support.factories import (
    CampaignFactory,
    ReputationAlertFactory,
    SendingConnectionFactory,
    SendingDomainFactory,
    TemplateFactory,
    make_audience,
)

# No links: the pre-flight page checks them, which must not depend on this machine's network.
NO_LINKS = '<p>Hello {{ first_name|default:"there" }}</p>'


def _campaign(from_email="news@sender.example", **fields) -> Campaign:
    topic, _ = make_audience(1, prefix=f"to-{Campaign.objects.count()}-")
    campaign = CampaignFactory(topic=topic, template=TemplateFactory(html_body=NO_LINKS), **fields)
    Campaign.objects.filter(pk=campaign.pk).update(from_email=from_email)
    campaign.from_email = from_email
    return campaign


def _preflight(client, campaign) -> str:
    response = client.get(reverse("campaigns:preflight", args=[campaign.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _alert(domain, *, level="critical", metric="complaints", rate=0.005, **fields):
    return ReputationAlertFactory(
        scope="domain",
        key=domain,
        metric=metric,
        level=level,
        rate=rate,
        volume=400,
        message=f"{metric} of {domain} is {rate:.2%} over the last 7 days ({level}).",
        **fields,
    )


def test_it_lists_the_open_alerts_of_the_sending_domain_and_says_sending_is_held(editor_client):
    SendingConnectionFactory(name="esp", sending_domain="sender.example")
    campaign = _campaign()
    critical = _alert("sender.example")
    warning = _alert("sender.example", level="warning", metric="hard_bounces", rate=0.03)
    elsewhere = _alert("other.example")
    resolved = _alert("sender.example", rate=0.009, resolved_at=timezone.now())
    page = _preflight(editor_client, campaign)
    assert 'id="reputation-hold"' in page and "1 critical reputation alert" in page
    assert critical.message in page and warning.message in page
    assert "Sending is held: scheduling, starting and resuming are refused" in page
    assert "reputation.complaints" in page and "reputation.hard_bounces" in page
    assert elsewhere.message not in page and resolved.message not in page


def test_an_acknowledged_alert_is_listed_with_who_acknowledged_it_and_holds_nothing(
    editor_client, admin_user
):
    SendingConnectionFactory(name="esp", sending_domain="sender.example")
    campaign = _campaign()
    alert = _alert("sender.example")
    alert_acknowledge(alert=alert, user=admin_user, note="Complainers <b>removed</b>")
    page = _preflight(editor_client, campaign)
    assert 'id="reputation-hold"' not in page
    assert "Acknowledged by alice-admin" in page and "at 0.50%" in page
    assert "Complainers &lt;b&gt;removed&lt;/b&gt;" in page  # escaped


WEAK = {
    ("sender.example", "TXT"): ['"v=spf1 include:spf.protection.outlook.com ?all"'],
    ("_dmarc.sender.example", "TXT"): ['"v=DMARC1; p=none"'],
    ("sender.example", "MX"): ["10 mx.sender.example."],
}


def test_it_lists_the_from_domains_failing_dns_checks(admin_client, settings):
    with FixedZoneServer(WEAK) as server:
        settings.DNS_NAMESERVERS = [f"127.0.0.1:{server.port}"]
        response = admin_client.post(
            reverse("analytics:domain-add"),
            {"domain": "Sender.Example", "spf_include": "mailgun.org", "dkim_selector": "k1"},
        )
    assert response.status_code == 302
    page = _preflight(admin_client, _campaign())
    assert "from.dns" in page and "2 DNS checks of sender.example fail" in page
    assert "SPF: SPF does not cover your ESP (mailgun.org)" in page
    assert "DKIM: No DKIM key at k1._domainkey.sender.example." in page
    assert "DMARC: " not in page  # p=none only warns
    assert "not a configured sending domain" not in page


def test_a_from_domain_that_passes_its_checks_gets_no_dns_finding(editor_client):

    SendingDomainFactory(
        domain="sender.example",
        status="pass",
        checked_at=timezone.now(),
        results=[{"name": "SPF", "status": "pass", "detail": "v=spf1 -all", "fix": ""}],
    )
    page = _preflight(editor_client, _campaign())
    assert "from.dns" not in page and "from.unconfigured" not in page


def test_a_from_domain_nobody_configured_is_warned_about(editor_client):
    SendingConnectionFactory(name="esp", sending_domain="mg.company.example")
    page = _preflight(editor_client, _campaign(from_email="news@unknown.example"))
    assert "from.unconfigured" in page
    assert "unknown.example is not a configured sending domain" in page
    assert "Configured: mg.company.example." in page
    # A subdomain of the From's, as ESPs set them up, is aligned with it.
    page = _preflight(editor_client, _campaign(from_email="news@company.example"))
    assert "from.unconfigured" not in page


def test_a_from_domain_other_than_the_connections_is_warned_about(editor_client):
    connection = SendingConnectionFactory(name="esp", sending_domain="other.example")
    SendingConnectionFactory(name="second", sending_domain="sender.example")
    page = _preflight(editor_client, _campaign(connection=connection))
    assert "from.misaligned" in page and "sends as other.example" in page


@pytest.mark.parametrize(
    "address",
    [
        "me@gmail.com",
        "me@googlemail.com",
        "me@yahoo.fr",
        "me@Yahoo.co.uk",
        "me@hotmail.com",
        "me@outlook.fr",
        "me@live.com",
        "me@aol.com",
        "me@icloud.com",
        "me@gmx.de",
        "me@web.de",
        "me@orange.fr",
        "me@laposte.net",
        "me@proton.me",
        "me@yandex.ru",
        "me@mail.ru",
    ],
)
def test_a_from_address_at_a_mailbox_provider_is_warned_about(editor_client, address):
    SendingConnectionFactory(name="esp", sending_domain=address.split("@")[1])
    page = _preflight(editor_client, _campaign(from_email=address))
    assert "from.mailbox_provider" in page and "a mailbox provider" in page
    assert f"The From address is at {address.split('@')[1].lower()}" in page


@pytest.mark.parametrize("address", ["news@yahoo.example.com", "news@gmxshop.de", "a@me.co"])
def test_look_alike_domains_are_not_taken_for_mailbox_providers(editor_client, address):
    page = _preflight(editor_client, _campaign(from_email=address))
    assert "from.mailbox_provider" not in page and "from.unconfigured" in page
