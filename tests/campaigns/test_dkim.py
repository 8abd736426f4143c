"""DKIM over SMTP, from the dashboard to the receiving server: an admin generates the keys on
the sending-domains page, publishes the TXT records it shows (here: on a DNS server on
loopback), and every message the SMTP server receives verifies with dkimpy against them —
also after a relay re-folds its headers, and across a key rotation."""

import re

import dkim as dkimpy
import dns.message
import dns.query
import dns.rdatatype
import pytest

from analytics.dkim import decrypt_private_key, txt_record_chunks
from analytics.models import DkimKey, SendingDomain
from campaigns.models import Delivery
from campaigns.pipeline import campaign_send_work
from campaigns.services import campaign_start
from tests.analytics.dns_server import FixedZoneServer
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    SendingDomainFactory,
    make_audience,
)

REQUIRED = {
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"list-id",
    b"feedback-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
}


@pytest.fixture
def zone(settings):
    with FixedZoneServer({("sender.example", "MX"): ["10 mx.sender.example."]}) as server:
        settings.DNS_NAMESERVERS = [f"127.0.0.1:{server.port}"]
        yield server


def publish(zone, name: str, value: str) -> None:
    """What the admin does in their DNS panel: one TXT record, in 255-byte strings."""
    key = (name.lower().rstrip(".") + ".", "TXT")
    zone.records[key] = [" ".join(f'"{c}"' for c in txt_record_chunks(value))]
    zone.names.add(key[0])


def dns_lookup(zone):
    """dkimpy's key lookup, asking the loopback DNS server."""

    def lookup(name, timeout=5):
        query = dns.message.make_query(name.decode(), dns.rdatatype.TXT)
        response = dns.query.udp(query, "127.0.0.1", port=zone.port, timeout=timeout)
        for rrset in response.answer:
            for rdata in rrset:
                return b"".join(rdata.strings)
        return None

    return lookup


def records_on_page(admin_client) -> dict[str, str]:
    """The record name and value of every key shown on the sending-domains page."""
    page = admin_client.get("/analytics/domains/").content.decode()
    names = re.findall(r"<code>([^<]+\._domainkey\.[^<]+)</code>", page)
    values = re.findall(r'aria-label="TXT record of [^"]+">([^<]+)</textarea>', page)
    assert len(names) == len(values)
    return dict(zip(names, values, strict=True))


def verify_all(raw_messages, zone) -> list[list[bytes]]:
    """Every signature of every message verifies; returns each message's selectors."""
    selectors = []
    for raw in raw_messages:
        checker = dkimpy.DKIM(raw)
        count = raw.count(b"DKIM-Signature:")
        assert count >= 1
        assert all(checker.verify(idx=i, dnsfunc=dns_lookup(zone)) for i in range(count)), raw
        found = re.findall(rb"DKIM-Signature:.*?\bs=([^;]+);", raw, re.S)
        selectors.append(found)
        signed = re.search(rb"h=([^;]+);", raw, re.S).group(1)
        names = {n.strip().lower() for n in re.sub(rb"\s", b"", signed).split(b":")}
        assert names >= REQUIRED, names
    return selectors


def send(smtp_sink, n=3, prefix="user"):
    topic, _ = make_audience(n, prefix=prefix)
    connection = SendingConnectionFactory(sink=smtp_sink, name=f"sink-{prefix}")
    campaign = CampaignFactory(topic=topic, connection=connection)
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "done"
    return campaign


def raw_received(smtp_sink, start=0) -> list[bytes]:
    return [envelope.content for envelope in smtp_sink.envelopes[start:]]


def test_keys_made_on_the_domains_page_sign_every_message_and_verify_at_the_receiver(
    db, admin_client, smtp_sink, zone
):
    assert admin_client.post("/analytics/domains/add/", {"domain": "sender.example"}).status_code
    domain = SendingDomain.objects.get(domain="sender.example")
    admin_client.post(f"/analytics/domains/{domain.pk}/dkim/", {"algorithm": "rsa"})
    admin_client.post(f"/analytics/domains/{domain.pk}/dkim/", {"algorithm": "ed25519"})
    keys = {k.algorithm: k for k in DkimKey.objects.filter(domain=domain)}
    assert {k.state for k in keys.values()} == {"active"}
    # The private key is kept encrypted; it decrypts to a PEM key.
    assert "PRIVATE KEY" not in keys["rsa"].private_key
    assert decrypt_private_key(keys["rsa"].private_key).startswith(b"-----BEGIN PRIVATE KEY")

    for name, value in records_on_page(admin_client).items():
        publish(zone, name, value)
    campaign = send(smtp_sink)

    raw = raw_received(smtp_sink)
    assert len(raw) == 3
    selectors = verify_all(raw, zone)
    # Dual-signed: RSA first, Ed25519 beside it.
    assert all(
        s == [keys["rsa"].selector.encode(), keys["ed25519"].selector.encode()] for s in selectors
    )
    assert set(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        "sent"
    }


def test_relaxed_canonicalization_survives_a_relay_that_refolds_and_respaces(
    db, admin_client, smtp_sink, zone
):
    domain = SendingDomainFactory(domain="sender.example")
    admin_client.post(f"/analytics/domains/{domain.pk}/dkim/", {"algorithm": "rsa"})
    for name, value in records_on_page(admin_client).items():
        publish(zone, name, value)
    send(smtp_sink, n=1)
    (raw,) = raw_received(smtp_sink)
    head, _, body = raw.partition(b"\r\n\r\n")
    # A relay unfolds the signature and re-folds other headers, and pads spaces.
    relayed_head = re.sub(rb"\r\n[ \t]+", b" ", head)
    relayed_head = relayed_head.replace(b"List-Unsubscribe: <", b"List-Unsubscribe:\r\n   <")
    relayed_head = relayed_head.replace(b"Subject: ", b"Subject:    ")
    relayed = relayed_head + b"\r\n\r\n" + body.replace(b"\r\n", b"  \r\n")
    assert relayed != raw
    verify_all([relayed], zone)
    # A changed body does not verify: the check above can fail.
    tampered = relayed.replace(b"Hello", b"Hallo", 1)
    with pytest.raises(dkimpy.ValidationError, match="body hash mismatch"):
        dkimpy.DKIM(tampered).verify(dnsfunc=dns_lookup(zone))


def test_rotation_with_a_second_selector_leaves_no_gap(db, admin_client, smtp_sink, zone):
    domain = SendingDomainFactory(domain="sender.example")
    admin_client.post(f"/analytics/domains/{domain.pk}/dkim/", {"algorithm": "rsa"})
    old = DkimKey.objects.get(domain=domain)
    publish(zone, old.record_name, old.record_value)

    # The new key waits, pending, while the old one keeps signing.
    page = admin_client.post(
        f"/analytics/domains/{domain.pk}/dkim/", {"algorithm": "rsa"}, follow=True
    ).content.decode()
    new = DkimKey.objects.exclude(pk=old.pk).get(domain=domain)
    assert new.state == "pending" and new.selector != old.selector
    assert "then activate it" in page and new.record_value in page
    send(smtp_sink, n=2)
    assert verify_all(raw_received(smtp_sink), zone) == [[old.selector.encode()]] * 2

    # Activation checks that the record is published first.
    page = admin_client.post(f"/analytics/dkim/{new.pk}/activate/", follow=True).content.decode()
    assert "does not publish this key yet" in page
    new.refresh_from_db()
    assert new.state == "pending"

    publish(zone, new.record_name, new.record_value)
    admin_client.post(f"/analytics/dkim/{new.pk}/activate/")
    new.refresh_from_db()
    old.refresh_from_db()
    assert (new.state, old.state) == ("active", "retiring")
    domain.refresh_from_db()
    assert domain.dkim_selector == new.selector  # the DNS check follows the signing key

    start = len(smtp_sink.envelopes)
    send(smtp_sink, n=2, prefix="later")  # the topic's four subscribers
    assert verify_all(raw_received(smtp_sink, start), zone) == [[new.selector.encode()]] * 4
    # The retiring key stays published; mail it signed still verifies.
    assert verify_all(raw_received(smtp_sink)[:start], zone)

    # A signing key cannot be removed; a retired one can.
    admin_client.post(f"/analytics/dkim/{new.pk}/revoke/")
    new.refresh_from_db()
    assert new.state == "active"
    admin_client.post(f"/analytics/dkim/{old.pk}/revoke/")
    old.refresh_from_db()
    assert old.state == "revoked"


def test_viewers_and_editors_cannot_make_or_rotate_keys(db, client, editor_user, zone):
    domain = SendingDomainFactory(domain="sender.example")
    client.force_login(editor_user)
    response = client.post(f"/analytics/domains/{domain.pk}/dkim/", {"algorithm": "rsa"})
    assert response.status_code == 403
    assert not DkimKey.objects.exists()


def test_the_dns_check_compares_the_published_key_with_the_signing_key(
    db, admin_client, zone, settings
):
    domain = SendingDomainFactory(domain="sender.example")
    admin_client.post(f"/analytics/domains/{domain.pk}/dkim/", {"algorithm": "rsa"})
    key = DkimKey.objects.get(domain=domain)
    other = DkimKey(algorithm="rsa", public_key="")
    from analytics.dkim import generate_key

    other.public_key = generate_key().public_b64
    publish(zone, key.record_name, f"v=DKIM1; k=rsa; p={other.public_key}")
    admin_client.post(f"/analytics/domains/{domain.pk}/check/")
    domain.refresh_from_db()
    (result,) = [c for c in domain.results if c["name"] == "DKIM"]
    assert result["status"] == "fail" and "not the key this app signs with" in result["detail"]

    publish(zone, key.record_name, key.record_value)
    admin_client.post(f"/analytics/domains/{domain.pk}/check/")
    domain.refresh_from_db()
    (result,) = [c for c in domain.results if c["name"] == "DKIM"]
    assert result["status"] == "pass" and "2048 bits" in result["detail"]


@pytest.mark.parametrize(("bits", "status"), [(768, "fail"), (1024, "warn"), (2048, "pass")])
def test_key_size_rules(db, zone, settings, bits, status):
    from analytics.dkim import generate_key
    from analytics.dns_checks import check_dkim, resolver

    key = generate_key(bits=bits) if bits >= 1024 else None
    if key is None:  # cryptography refuses to make keys under 1024 bits: a known 768-bit key
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        public = rsa.RSAPublicNumbers(65537, (1 << 767) + 1).public_key()
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        import base64

        p = base64.b64encode(der).decode()
    else:
        p = key.public_b64
    publish(zone, "s1._domainkey.sender.example", f"v=DKIM1; k=rsa; p={p}")
    assert check_dkim(resolver(), "sender.example", "s1").status == status
