"""TLS to the sender's relay is verified by default: a certificate for the wrong host is
refused (the campaign pauses with the reason; nobody is failed, nothing is lost) unless the
connection pins that certificate or explicitly accepts any; the dashboard says which. A
campaign without a connection honours Django's EMAIL_* settings."""

import datetime
import hashlib
import json
import ssl

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from campaigns.models import Campaign, Delivery, SendingConnection
from campaigns.pipeline import campaign_send_work
from campaigns.services import campaign_resume, campaign_start
from tests.support.factories import CampaignFactory, make_audience
from tests.support.smtp import Sink


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, *, host=None, ca=False):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if host:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


class Pki:
    """A private CA (trusted through SSL_CERT_FILE, as an admin would install it) and server
    certificates for the relay."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert("Test CA", self.ca_key, "Test CA", self.ca_key, ca=True)
        self.ca_file = tmp_path / "ca.pem"
        self.ca_file.write_bytes(self.ca.public_bytes(serialization.Encoding.PEM))

    def server_context(self, host, *, self_signed=False):
        key = ec.generate_private_key(ec.SECP256R1())
        if self_signed:
            cert = _cert(host, key, host, key, host=host)
        else:
            cert = _cert(host, key, "Test CA", self.ca_key, host=host)
        cert_file, key_file = self.dir / f"{host}.crt", self.dir / f"{host}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
        return context, fingerprint


@pytest.fixture
def pki(tmp_path, monkeypatch):
    pki = Pki(tmp_path)
    # ssl.create_default_context() reads the trust store from here (OpenSSL's variable).
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    return pki


def tls_sink(context, *, implicit=False):
    sink = Sink()
    if implicit:
        sink.controller = Controller(
            sink, hostname="127.0.0.1", port=sink.port, ssl_context=context
        )
    else:
        sink.controller = Controller(
            sink, hostname="127.0.0.1", port=sink.port, tls_context=context, require_starttls=True
        )
    return sink.start()


def save_connection(admin_client, port, **options):
    """The connection form, as an admin fills it in."""
    response = admin_client.post(
        "/campaigns/connections/new/",
        {
            "name": "relay",
            "backend": "django.core.mail.backends.smtp.EmailBackend",
            "options": json.dumps({"host": "localhost", "port": port, **options}),
            "sending_domain": "sender.example",
            "domain_caps": "{}",
            "warmup_plan": "[]",
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    return SendingConnection.objects.get(name="relay")


def run(connection, n=2):
    topic, _ = make_audience(n)
    campaign = CampaignFactory(topic=topic, connection=connection)
    campaign_start(campaign=campaign)
    outcome = campaign_send_work(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    return campaign, outcome


def statuses(campaign):
    return sorted(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True))


def test_starttls_to_a_certificate_for_another_host_is_refused_and_pauses(db, admin_client, pki):
    context, _ = pki.server_context("wrong.example")  # signed by the trusted CA, wrong name
    sink = tls_sink(context)
    try:
        connection = save_connection(admin_client, sink.port, use_tls=True)
        campaign, outcome = run(connection)
    finally:
        sink.stop()
    assert outcome == "stopped" and sink.parsed() == []
    assert campaign.status == Campaign.Status.PAUSED
    assert "failed verification" in campaign.status_reason
    assert "Nothing was sent or lost" in campaign.status_reason
    assert statuses(campaign) == ["pending", "pending"]  # nobody failed for a setting
    page = admin_client.get("/campaigns/connections/").content.decode()
    assert ">verified<" in page


def test_a_self_signed_certificate_is_refused_unless_pinned_and_then_delivers(
    db, admin_client, pki
):
    context, fingerprint = pki.server_context("relay.internal", self_signed=True)
    sink = tls_sink(context)
    try:
        connection = save_connection(admin_client, sink.port, use_tls=True)
        campaign, _ = run(connection)
        assert campaign.status == Campaign.Status.PAUSED and sink.parsed() == []

        # The admin pins the relay's certificate; resuming delivers everyone once.
        connection.options = {**connection.options, "tls_fingerprint": fingerprint.upper()}
        connection.save()
        campaign_resume(campaign=campaign)
        assert campaign_send_work(campaign_id=campaign.pk) == "done"
        assert sorted(sink.recipients()) == ["user0@example.org", "user1@example.org"]
    finally:
        sink.stop()
    page = admin_client.get("/campaigns/connections/").content.decode()
    assert "pinned certificate" in page


def test_a_pin_that_does_not_match_is_refused(db, admin_client, pki):
    context, _fingerprint = pki.server_context("relay.internal", self_signed=True)
    sink = tls_sink(context)
    try:
        connection = save_connection(
            admin_client, sink.port, use_tls=True, tls_fingerprint="ab" * 32
        )
        campaign, _ = run(connection)
    finally:
        sink.stop()
    assert campaign.status == Campaign.Status.PAUSED and sink.parsed() == []
    assert "not the pinned one" in campaign.status_reason


def test_accepting_any_certificate_is_explicit_and_shown(db, admin_client, pki):
    context, _ = pki.server_context("relay.internal", self_signed=True)
    sink = tls_sink(context)
    try:
        connection = save_connection(admin_client, sink.port, use_tls=True, tls_verify=False)
        _campaign, outcome = run(connection)
    finally:
        sink.stop()
    assert outcome == "done" and len(sink.parsed()) == 2
    page = admin_client.get("/campaigns/connections/").content.decode()
    assert "NOT verified" in page


def test_implicit_tls_on_465_verifies_the_certificate_and_host(db, admin_client, pki):
    good, _ = pki.server_context("localhost")
    sink = tls_sink(good, implicit=True)
    try:
        connection = save_connection(admin_client, sink.port, use_ssl=True)
        campaign, outcome = run(connection)
    finally:
        sink.stop()
    assert outcome == "done" and len(sink.parsed()) == 2

    wrong, _ = pki.server_context("wrong.example")
    sink = tls_sink(wrong, implicit=True)
    try:
        connection.options = {**connection.options, "port": sink.port}
        connection.save()
        topic, _ = make_audience(1, prefix="other")
        campaign = CampaignFactory(topic=topic, connection=connection, name="Second")
        campaign_start(campaign=campaign)
        campaign_send_work(campaign_id=campaign.pk)
        campaign.refresh_from_db()
    finally:
        sink.stop()
    assert campaign.status == Campaign.Status.PAUSED and sink.parsed() == []


def test_the_connection_form_refuses_contradictory_tls_options(db, admin_client):
    response = admin_client.post(
        "/campaigns/connections/new/",
        {
            "name": "relay",
            "backend": "django.core.mail.backends.smtp.EmailBackend",
            "options": json.dumps({"host": "h", "use_tls": True, "use_ssl": True}),
            "domain_caps": "{}",
            "warmup_plan": "[]",
        },
    )
    assert response.status_code == 200
    assert "Choose one" in response.content.decode()
    response = admin_client.post(
        "/campaigns/connections/new/",
        {
            "name": "relay",
            "backend": "django.core.mail.backends.smtp.EmailBackend",
            "options": json.dumps({"host": "h", "use_tls": True, "tls_fingerprint": "xyz"}),
            "domain_caps": "{}",
            "warmup_plan": "[]",
        },
    )
    assert "SHA-256" in response.content.decode()
    assert not SendingConnection.objects.exists()


def test_without_a_connection_the_documented_email_settings_are_honoured(db, settings, pki):
    context, _ = pki.server_context("localhost")
    sink = tls_sink(context)  # "530 Must issue a STARTTLS command first" without TLS
    settings.EMAIL_HOST, settings.EMAIL_PORT = "localhost", sink.port
    try:
        settings.EMAIL_USE_TLS = False
        campaign, _ = run(None)
        # Not "finished" with every delivery failed: paused, saying what to fix.
        assert campaign.status == Campaign.Status.PAUSED
        assert "STARTTLS" in campaign.status_reason
        assert statuses(campaign) == ["pending", "pending"]

        settings.EMAIL_USE_TLS = True
        campaign_resume(campaign=campaign)
        assert campaign_send_work(campaign_id=campaign.pk) == "done"
        assert sorted(sink.recipients()) == ["user0@example.org", "user1@example.org"]
    finally:
        sink.stop()
