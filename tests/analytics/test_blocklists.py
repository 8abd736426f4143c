"""Blocklists, over loopback zones named like the real ones: a sending IP listed on Spamhaus
ZEN with its TXT explanation, a PBL-only listing (policy: a warning), a clean IP, Spamhaus
refusing the query (could not check, never listed), link domains on the DBL and on SURBL's
bitmask, a subdomain judged by its registered domain, and no DNS answering at all. Through
the domains page, its check button and the beat task."""

import pytest
from django.urls import reverse

from analytics.blocklists import ip_listings, link_domains, listings
from analytics.tasks import blocklists_check_all
from tests.analytics.dns_server import FixedZoneServer
from tests.support.factories import SendingDomainFactory
from tests.support.smtp import free_port

SBL_TXT = "Listed by SBL, see https://check.spamhaus.org/sbl/query/SBL999"
ZONE = {
    # 192.0.2.1: on the SBL (and SpamCop); 192.0.2.2: on the PBL only; 192.0.2.3: nowhere.
    ("1.2.0.192.zen.spamhaus.org", "A"): ["127.0.0.2"],
    ("1.2.0.192.zen.spamhaus.org", "TXT"): [f'"{SBL_TXT}"'],
    ("1.2.0.192.bl.spamcop.net", "A"): ["127.0.0.2"],
    ("2.2.0.192.zen.spamhaus.org", "A"): ["127.0.0.11"],
    ("2.2.0.192.zen.spamhaus.org", "TXT"): ['"https://www.spamhaus.org/query/ip/192.0.2.2"'],
    # 192.0.2.4: what Spamhaus answers a query through a public resolver.
    ("4.2.0.192.zen.spamhaus.org", "A"): ["127.255.255.254"],
    # 2001:db8::1, exploited (XBL).
    ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.zen.spamhaus.org", "A"): [
        "127.0.0.4"
    ],
    # Link domains: a spam domain on the DBL, a phishing + malware one on SURBL (8 | 16), a
    # registered domain on the DBL whose links use a subdomain, one URIBL refuses to answer.
    ("spammy.example.dbl.spamhaus.org", "A"): ["127.0.1.2"],
    ("spammy.example.dbl.spamhaus.org", "TXT"): [
        '"https://www.spamhaus.org/query/dbl?domain=spammy.example"'
    ],
    ("phishy.example.multi.surbl.org", "A"): ["127.0.0.24"],
    ("tracked.co.uk.dbl.spamhaus.org", "A"): ["127.0.1.102"],
    ("refused.example.multi.uribl.com", "A"): ["127.0.0.1"],
}
ZONES = {
    "DNSBL_ZONES": ["zen.spamhaus.org", "bl.spamcop.net", "b.barracudacentral.org"],
    "URIBL_ZONES": ["dbl.spamhaus.org", "multi.surbl.org", "multi.uribl.com"],
}


@pytest.fixture
def zone(settings):
    for name, value in ZONES.items():
        setattr(settings, name, value)
    with FixedZoneServer(ZONE) as server:
        settings.DNS_NAMESERVERS = [f"127.0.0.1:{server.port}"]
        yield server


def by_list(found, target):
    return {f.blocklist: f for f in found if f.target == target}


def test_an_ip_listed_on_zen_fails_with_its_meaning_txt_and_how_to_get_delisted(zone):
    zen = by_list(ip_listings(["192.0.2.1"]), "192.0.2.1")
    assert zen["Spamhaus ZEN"].status == "fail"
    assert zen["Spamhaus ZEN"].detail.startswith("SBL: a known spam source")
    assert zen["Spamhaus ZEN"].txt == SBL_TXT
    assert "Fix the cause first" in zen["Spamhaus ZEN"].delist
    assert zen["Spamhaus ZEN"].delist_url == "https://check.spamhaus.org/results/?query=192.0.2.1"
    assert zen["SpamCop"].status == "fail" and "24 hours" in zen["SpamCop"].delist
    assert zen["Barracuda"].status == "pass"


def test_a_pbl_only_listing_is_a_policy_warning_not_a_failure(zone):
    zen = by_list(ip_listings(["192.0.2.2"]), "192.0.2.2")["Spamhaus ZEN"]
    assert zen.status == "warn" and "policy listing, not a sign of abuse" in zen.detail
    assert zen.txt == "https://www.spamhaus.org/query/ip/192.0.2.2"


def test_a_clean_ip_passes_every_list(zone):
    found = ip_listings(["192.0.2.3"])
    assert [(f.blocklist, f.status) for f in found] == [
        ("Spamhaus ZEN", "pass"),
        ("SpamCop", "pass"),
        ("Barracuda", "pass"),
    ]


def test_spamhaus_refusing_the_query_is_could_not_check_never_listed(zone):
    zen = by_list(ip_listings(["192.0.2.4"]), "192.0.2.4")["Spamhaus ZEN"]
    assert zen.status == "unknown" and zen.detail.startswith("Could not check")
    assert "public or unattributable resolver" in zen.detail and not zen.delist


def test_an_ipv6_address_is_looked_up_by_its_reversed_nibbles(zone):
    zen = by_list(ip_listings(["2001:db8::1"]), "2001:db8::1")["Spamhaus ZEN"]
    assert zen.status == "fail" and zen.detail.startswith("XBL")


def test_link_domains_are_judged_on_the_uri_blocklists_by_their_registered_domain(zone):
    domains = link_domains(
        [
            "https://www.spammy.example/offer",
            "see http://login.phishy.example:8080/x and https://news.tracked.co.uk/a?b=c",
            "https://refused.example/ https://clean.example/ http://192.0.2.1/ http://localhost/",
        ]
    )
    assert domains["tracked.co.uk"] == {"news.tracked.co.uk"}
    assert set(domains) == {
        "spammy.example",
        "phishy.example",
        "tracked.co.uk",
        "refused.example",
        "clean.example",
    }  # IP addresses and names nobody can register are not asked about
    found = listings(ips=[], domains=domains)
    dbl = by_list(found, "spammy.example")["Spamhaus DBL"]
    assert dbl.status == "fail" and dbl.detail == "Spamhaus DBL lists it as a spam domain."
    assert dbl.delist_url == "https://check.spamhaus.org/results/?query=spammy.example"
    assert "spamhaus.org/query/dbl" in dbl.txt
    surbl = by_list(found, "phishy.example")["SURBL"]
    assert surbl.status == "fail"
    assert surbl.detail == "SURBL lists it on PH: phishing sites, MW: malware sites."
    tracked = by_list(found, "tracked.co.uk")["Spamhaus DBL"]
    assert tracked.status == "fail" and "legitimate domain abused by spammers" in tracked.detail
    uribl = by_list(found, "refused.example")["URIBL"]
    assert uribl.status == "unknown" and "URIBL refused the query" in uribl.detail
    assert {f.status for f in found if f.target == "clean.example"} == {"pass"}


def test_no_dns_answer_at_all_is_could_not_check(db, settings):
    settings.DNS_NAMESERVERS = [f"127.0.0.1:{free_port()}"]  # nobody listens there
    settings.DNS_LIFETIME_SECONDS = 1  # each unanswered question waits this long
    found = listings(ips=["192.0.2.1"], domains=["spammy.example"])
    assert found and {f.status for f in found} == {"unknown"}
    assert all(f.detail.startswith("Could not check: no DNS answer") for f in found)
    domain = SendingDomainFactory(domain="offline.example", sending_ips="192.0.2.1")
    blocklists_check_all()
    domain.refresh_from_db()
    assert domain.status == "unchecked"  # nothing known: not "fail", not "pass"


def test_the_beat_task_stores_every_sending_domains_listings(db, zone):
    listed = SendingDomainFactory(domain="listed.example", sending_ips="192.0.2.1")
    policy = SendingDomainFactory(domain="policy.example", sending_ips="192.0.2.3, 192.0.2.2")
    shared = SendingDomainFactory(domain="esp.example")
    assert blocklists_check_all() == 3
    for domain in (listed, policy, shared):
        domain.refresh_from_db()
        assert domain.blocklists_checked_at is not None
    assert listed.status == "fail"
    assert {(b["blocklist"], b["status"]) for b in listed.blocklist_results} == {
        ("Spamhaus ZEN", "fail"),
        ("SpamCop", "fail"),
        ("Barracuda", "pass"),
    }
    assert policy.status == "warn" and len(policy.blocklist_results) == 6
    assert shared.blocklist_results == [] and shared.status == "unchecked"


def test_the_beat_schedule_runs_the_blocklist_check_every_six_hours(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["analytics-blocklists"]
    assert entry == {"task": "analytics.tasks.blocklists_check_all", "schedule": 6 * 3600.0}


def test_the_domains_page_shows_the_stored_listing_with_its_meaning_and_delisting(
    admin_client, zone
):
    SendingDomainFactory(domain="sender.example", sending_ips="192.0.2.1, 192.0.2.2")
    blocklists_check_all()
    zone.records.clear()  # the page shows what was stored: it asks no list itself
    zone.names.clear()
    page = admin_client.get(reverse("analytics:domains")).content.decode()
    assert 'data-listing="192.0.2.1 Spamhaus ZEN" data-status="fail"' in page
    assert "SBL: a known spam source" in page and SBL_TXT in page
    assert "How to get delisted: Fix the cause first" in page
    assert 'href="https://check.spamhaus.org/results/?query=192.0.2.1"' in page
    assert 'data-listing="192.0.2.2 Spamhaus ZEN" data-status="warn"' in page
    assert "Policy listing" in page
    assert "Not listed: 192.0.2.1 on Barracuda; 192.0.2.2 on SpamCop; 192.0.2.2 on Barracuda." in (
        page
    )


def test_the_check_button_asks_the_lists_again(admin_client, zone):
    domain = SendingDomainFactory(domain="sender.example", sending_ips="192.0.2.1")
    page = admin_client.get(reverse("analytics:domains")).content.decode()
    assert "data-listing=" not in page
    response = admin_client.post(reverse("analytics:domain-check", args=[domain.pk]))
    assert response.status_code == 302
    page = admin_client.get(reverse("analytics:domains")).content.decode()
    assert 'data-listing="192.0.2.1 Spamhaus ZEN" data-status="fail"' in page
    # Delisted since: the next check says so.
    del zone.records[("1.2.0.192.zen.spamhaus.org.", "A")]
    admin_client.post(reverse("analytics:domain-check", args=[domain.pk]))
    page = admin_client.get(reverse("analytics:domains")).content.decode()
    assert 'data-listing="192.0.2.1 Spamhaus ZEN"' not in page
    assert "192.0.2.1 on Spamhaus ZEN" in page
