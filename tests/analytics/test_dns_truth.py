"""The DNS checks tell the truth, judged beside checkdmarc over the same loopback zones: SPF
lookups counted through every include (over 10 fails), void lookups, two DMARC records, the
organisational domain's DMARC for a subdomain, forward-confirmed reverse DNS, the bounce
domain, and "could not check" (never "fail") when no DNS answers."""

import checkdmarc.dmarc
import checkdmarc.spf
import dns.resolver
import pytest

from analytics.dns_checks import (
    check_dmarc,
    check_spf,
    resolver,
    sending_domain_check,
    spf_lookups,
)
from tests.analytics.dns_server import FixedZoneServer
from tests.support.factories import SendingDomainFactory
from tests.support.smtp import free_port

SPF = "v=spf1 {} -all"
ZONE = {
    # 12 lookups: 2 includes at the top, each with 4 more includes + 1 a = 2 + 2 * (4 + 1).
    ("many.example", "TXT"): [f'"{SPF.format("include:i1.many.example include:i2.many.example")}"'],
    **{
        (f"i{n}.many.example", "TXT"): [
            f'"{SPF.format(" ".join(f"include:l{n}{k}.many.example" for k in range(4)) + " a")}"'
        ]
        for n in (1, 2)
    },
    **{
        (f"l{n}{k}.many.example", "TXT"): ['"v=spf1 ip4:192.0.2.1 -all"']
        for n in (1, 2)
        for k in range(4)
    },
    ("i1.many.example", "A"): ["192.0.2.1"],
    ("i2.many.example", "A"): ["192.0.2.2"],
    # 10 lookups exactly: passes.
    ("ten.example", "TXT"): [
        f'"{SPF.format("include:i1.many.example include:l20.many.example a mx a:i2.many.example")}"'
    ],
    ("ten.example", "A"): ["192.0.2.3"],
    ("ten.example", "MX"): ["10 mx.ten.example."],
    # Three a: terms pointing at names that do not exist: void lookups.
    ("void.example", "TXT"): [
        f'"{SPF.format("a:n1.void.example a:n2.void.example a:n3.void.example")}"'
    ],
    ("void.example", "MX"): ["10 mx.void.example."],
    # Two DMARC records.
    ("two.example", "TXT"): ['"v=spf1 -all"'],
    ("_dmarc.two.example", "TXT"): ['"v=DMARC1; p=reject"', '"v=DMARC1; p=none"'],
    # A subdomain without DMARC: its organisational domain's record applies.
    ("org.co.uk", "TXT"): ['"v=spf1 -all"'],
    ("_dmarc.org.co.uk", "TXT"): ['"v=DMARC1; p=reject; rua=mailto:d@org.co.uk"'],
    ("news.org.co.uk", "TXT"): ['"v=spf1 -all"'],
}


@pytest.fixture
def zone(settings):
    with FixedZoneServer(ZONE) as server:
        settings.DNS_NAMESERVERS = [f"127.0.0.1:{server.port}"]
        yield server


def their_resolver(port):
    r = dns.resolver.Resolver(configure=False)
    r.nameservers, r.port = ["127.0.0.1"], port
    return r


def test_spf_lookups_are_counted_through_every_include_like_checkdmarc(zone):
    ours = check_spf(resolver(), "many.example", "")
    assert ours.status == "fail" and "12 DNS lookups" in ours.detail
    theirs = checkdmarc.spf.check_spf("many.example", resolver=their_resolver(zone.port))
    assert not theirs["valid"] and "DNS lookups" in theirs["error"]

    ours = check_spf(resolver(), "ten.example", "")
    assert ours.status == "pass"
    theirs = checkdmarc.spf.check_spf("ten.example", resolver=their_resolver(zone.port))
    assert theirs["valid"] and theirs["dns_lookups"] == spf_lookups(resolver(), "ten.example")[0]
    assert theirs["dns_lookups"] == 10


def test_void_lookups_fail_like_checkdmarc(zone):
    ours = check_spf(resolver(), "void.example", "")
    assert ours.status == "fail" and "3 lookups that find nothing" in ours.detail
    theirs = checkdmarc.spf.check_spf("void.example", resolver=their_resolver(zone.port))
    assert not theirs["valid"] and theirs["void_dns_lookups"] == 3


def test_two_dmarc_records_fail_like_checkdmarc(zone):
    ours = check_dmarc(resolver(), "two.example")
    assert ours.status == "fail" and "2 DMARC records" in ours.detail
    with pytest.raises(checkdmarc.dmarc.MultipleDMARCRecords):
        checkdmarc.dmarc.query_dmarc_record("two.example", resolver=their_resolver(zone.port))


def test_a_subdomain_uses_its_organisational_domains_dmarc_like_checkdmarc(zone):
    ours = check_dmarc(resolver(), "news.org.co.uk")
    assert ours.status == "pass" and "p=reject" in ours.detail
    theirs = checkdmarc.dmarc.query_dmarc_record(
        "news.org.co.uk", resolver=their_resolver(zone.port)
    )
    assert theirs["location"] == "org.co.uk"


def test_no_dns_answer_is_could_not_check_never_fail(db, settings):
    settings.DNS_NAMESERVERS = [f"127.0.0.1:{free_port()}"]  # nobody listens there
    settings.DNS_LIFETIME_SECONDS = 1  # each unanswered question waits this long
    domain = SendingDomainFactory(domain="offline.example", dkim_selector="k1")
    checks = sending_domain_check(domain=domain)
    assert {c.status for c in checks if c.name in {"SPF", "DKIM", "DMARC", "MX"}} == {"unknown"}
    assert all("Could not check" in c.detail for c in checks if c.status == "unknown")
    domain.refresh_from_db()
    assert domain.status == "unchecked"


def test_the_bounce_domain_is_checked_for_spf_and_alignment(db, zone, settings):
    domain = SendingDomainFactory(domain="org.co.uk")
    settings.BOUNCE_DOMAIN = "bounces.elsewhere.example"
    (check,) = [c for c in sending_domain_check(domain=domain) if c.name == "Bounce domain"]
    assert check.status == "warn" and "cannot align" in check.detail
    settings.BOUNCE_DOMAIN = "news.org.co.uk"
    (check,) = [c for c in sending_domain_check(domain=domain) if c.name == "Bounce domain"]
    assert check.status == "pass"
