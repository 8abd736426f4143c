import pytest

from analytics.dkim import generate_key, txt_record, txt_record_chunks
from analytics.dns_checks import sending_domain_check, sending_domains_check
from analytics.models import SendingDomain
from tests.analytics.dns_server import FixedZoneServer
from tests.support.factories import SendingConnectionFactory, SendingDomainFactory

KEY = " ".join(f'"{c}"' for c in txt_record_chunks(txt_record("rsa", generate_key().public_b64)))

GOOD = {
    ("good.example", "TXT"): ['"v=spf1 include:mailgun.org ~all"', '"google-site-verification=x"'],
    ("k1._domainkey.good.example", "TXT"): [KEY],
    ("_dmarc.good.example", "TXT"): ['"v=DMARC1; p=quarantine; rua=mailto:d@good.example"'],
    ("good.example", "MX"): ["10 mx1.good.example.", "20 mx2.good.example."],
    ("9.2.0.192.in-addr.arpa", "PTR"): ["mta1.good.example."],
    ("mta1.good.example", "A"): ["192.0.2.9"],
    ("weak.example", "TXT"): ['"v=spf1 include:spf.protection.outlook.com ?all"'],
    # What the ESPs publish (an include of a name without SPF is a permanent error).
    ("mailgun.org", "TXT"): ['"v=spf1 ip4:192.0.2.0/24 -all"'],
    ("spf.protection.outlook.com", "TXT"): ['"v=spf1 ip4:198.51.100.0/24 -all"'],
    ("_dmarc.weak.example", "TXT"): ['"v=DMARC1; p=none"'],
    ("weak.example", "MX"): ["10 mx.weak.example."],
    ("10.2.0.192.in-addr.arpa", "PTR"): ["elsewhere.example."],
    ("bad.example", "A"): ["192.0.2.50"],
}


@pytest.fixture
def dns_server(settings):
    with FixedZoneServer(GOOD) as server:
        settings.DNS_NAMESERVERS = [f"127.0.0.1:{server.port}"]
        yield server


def results(domain):
    return {c.name: c for c in sending_domain_check(domain=domain)}


def test_a_well_configured_domain_passes_every_check(db, dns_server):
    domain = SendingDomainFactory(
        domain="good.example",
        spf_include="mailgun.org",
        dkim_selector="k1",
        sending_ips="192.0.2.9",
    )
    checks = results(domain)
    assert {name: c.status for name, c in checks.items()} == {
        "SPF": "pass",
        "DKIM": "pass",
        "DMARC": "pass",
        "MX": "pass",
        "Reverse DNS": "pass",
        "Bounce domain": "info",
    }
    domain.refresh_from_db()
    assert domain.status == "pass" and domain.checked_at is not None
    assert len(domain.results) == 6


def test_weak_settings_warn_or_fail_with_a_fix(db, dns_server):
    domain = SendingDomainFactory(
        domain="weak.example",
        spf_include="mailgun.org",
        dkim_selector="k1",
        sending_ips="192.0.2.10",
    )
    checks = results(domain)
    assert checks["SPF"].status == "fail" and "include:mailgun.org" in checks["SPF"].fix
    assert checks["DKIM"].status == "fail" and "k1._domainkey.weak.example" in checks["DKIM"].fix
    assert checks["DMARC"].status == "warn" and "p=quarantine" in checks["DMARC"].fix
    assert checks["MX"].status == "pass"  # one MX is fine; a backup is advice
    assert checks["Reverse DNS"].status == "fail"  # the PTR does not resolve back
    domain.refresh_from_db()
    assert domain.status == "fail"


def test_a_domain_with_no_records_fails_everywhere_it_should(db, dns_server):
    domain = SendingDomainFactory(domain="bad.example", sending_ips="192.0.2.50")
    checks = results(domain)
    assert checks["SPF"].status == "fail" and checks["DMARC"].status == "fail"
    assert checks["MX"].status == "fail" and checks["Reverse DNS"].status == "fail"
    assert checks["DKIM"].status == "warn"  # no selector entered yet


def test_the_scheduled_check_covers_every_connection_domain(db, dns_server):
    SendingConnectionFactory(name="mg", sending_domain="good.example")
    assert sending_domains_check() == 1
    assert SendingDomain.objects.get().checked_at is not None
