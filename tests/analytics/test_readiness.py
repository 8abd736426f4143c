"""Bulk-sender readiness, judged on a real message: an editor presses "Send a seed message and
check" on a sending domain's page; the seed goes out through the domain's connection (STARTTLS,
certificate verified) to a real SMTP server, lands in a real Dovecot mailbox, is read back over
IMAP, and every requirement of Gmail, Yahoo and Outlook.com is judged against DNS served on
loopback: a ready domain passes them all, a missing DMARC record or an unaligned Return-Path
fails, and a DNS that does not answer is "cannot check", never "fail"."""

import contextlib
import re
import threading
from datetime import date, timedelta
from types import SimpleNamespace
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from django.core.wsgi import get_wsgi_application
from django.db import connections
from django.utils import timezone

from analytics.dkim import txt_record_chunks
from analytics.dkim_keys import dkim_key_create
from analytics.models import ReadinessRun
from nofailmail.celery import app as celery_app
from tests.analytics.dns_server import FixedZoneServer
from tests.campaigns.test_smtp_tls import Pki
from tests.support.dovecot import Dovecot
from tests.support.factories import (
    DomainDailyFactory,
    ReadinessRunFactory,
    SendingConnectionFactory,
    SendingDomainFactory,
)
from tests.support.smtp import Sink, free_port

DOMAIN, BOUNCES, RELAY_IP = "sender.example", "bounces.sender.example", "192.0.2.10"
ALL = {
    "spf",
    "dkim",
    "dmarc",
    "dkim_alignment",
    "spf_alignment",
    "ptr",
    "tls",
    "one_click",
    "complaints",
}


def ready_zone() -> dict:
    return {
        (DOMAIN, "TXT"): ['"v=spf1 ip4:192.0.2.0/24 -all"'],
        (DOMAIN, "MX"): ["10 mx.sender.example."],
        (BOUNCES, "TXT"): ['"v=spf1 ip4:192.0.2.0/24 -all"'],
        (BOUNCES, "MX"): ["10 mx.sender.example."],
        (f"_dmarc.{DOMAIN}", "TXT"): ['"v=DMARC1; p=reject; rua=mailto:dmarc@sender.example"'],
        ("10.2.0.192.in-addr.arpa", "PTR"): ["relay.sender.example."],
        ("relay.sender.example", "A"): [RELAY_IP],
    }


class SeedMailboxSink(Sink):
    """The receiving side: an SMTP server that requires STARTTLS and files each message into
    the Dovecot mailbox by IMAP APPEND, with the Return-Path line an MTA writes at final
    delivery. (aiosmtpd is no MTA: it adds no Received header, so TLS is judged on the app's
    own session, as it would be behind a relay that adds none either.)"""

    def __init__(self, dovecot: Dovecot, tls_context):
        super().__init__()
        from aiosmtpd.controller import Controller

        self.dovecot = dovecot
        self.controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=tls_context,
            require_starttls=True,
        )

    async def handle_DATA(self, server, session, envelope):
        answer = await super().handle_DATA(server, session, envelope)
        self.dovecot.append(f"Return-Path: <{envelope.mail_from}>\r\n".encode() + envelope.content)
        return answer


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class HttpsSite:
    """This app served over https on loopback (wsgiref + the test CA's certificate), so the
    check's one-click POST goes over the network to the real unsubscribe view."""

    def __init__(self, tls_context):
        self.httpd = make_server(
            "127.0.0.1", 0, get_wsgi_application(), handler_class=_QuietHandler
        )
        self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.httpd.base_environ["HTTPS"] = "on"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        try:
            self.httpd.serve_forever(poll_interval=0.1)
        finally:
            connections.close_all()  # this thread's database connection

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def eager_tasks():
    before = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    celery_app.conf.update(task_always_eager=before[0], task_eager_propagates=before[1])


@pytest.fixture
def world(db, settings, tmp_path, monkeypatch, eager_tasks):
    """A sending domain with its DKIM key, dedicated IP, connection and 1,000 messages with
    one complaint; its DNS on loopback; the seed mailbox; the app on https."""
    pki = Pki(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    tls_context, _ = pki.server_context("localhost")
    with contextlib.ExitStack() as stack:
        dovecot = Dovecot().start()
        stack.callback(dovecot.stop)
        sink = SeedMailboxSink(dovecot, tls_context).start()
        stack.callback(sink.stop)
        zone = stack.enter_context(FixedZoneServer(ready_zone()))
        site = stack.enter_context(HttpsSite(tls_context))
        settings.DNS_NAMESERVERS = [f"127.0.0.1:{zone.port}"]
        settings.BOUNCE_DOMAIN = BOUNCES
        settings.SITE_URL = f"https://localhost:{site.port}"
        settings.READINESS_SEED_ADDRESS = "seed@example.org"
        settings.READINESS_IMAP_URL = dovecot.url
        settings.READINESS_WAIT_SECONDS = 30
        domain = SendingDomainFactory(domain=DOMAIN, sending_ips=RELAY_IP)
        key = dkim_key_create(domain=domain)
        zone.records[(f"{key.record_name}.", "TXT")] = [
            " ".join(f'"{c}"' for c in txt_record_chunks(key.record_value))
        ]
        zone.names.add(f"{key.record_name}.")
        SendingConnectionFactory(
            name="relay",
            backend="django.core.mail.backends.smtp.EmailBackend",
            options={"host": "localhost", "port": sink.port, "use_tls": True},
            sending_domain=DOMAIN,
        )
        DomainDailyFactory(domain=DOMAIN, day=date.today(), delivered=1000, complained=1)
        yield SimpleNamespace(domain=domain, zone=zone, sink=sink, dovecot=dovecot)


def run_check(client, domain, django_capture_on_commit_callbacks) -> tuple[dict, str]:
    """Press the button (the worker runs it at commit); the verdicts shown on the page."""
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/analytics/domains/{domain.pk}/readiness/run/")
    assert response.status_code == 302
    page = client.get(f"/analytics/domains/{domain.pk}/readiness/").content.decode()
    run = ReadinessRun.objects.get(domain=domain)
    assert run.status == "done", run.error
    return dict(re.findall(r'data-requirement="([^"]+)" data-status="([^"]+)"', page)), page


def drop(zone, name, rtype):
    zone.records.pop((name.rstrip(".") + ".", rtype), None)


def test_a_ready_domain_passes_every_requirement_on_the_seed_message(
    editor_client, world, django_capture_on_commit_callbacks
):
    verdicts, page = run_check(editor_client, world.domain, django_capture_on_commit_callbacks)
    assert verdicts == dict.fromkeys(ALL, "pass")
    # The seed went through the campaign code path: VERP envelope sender, signed, one-click.
    (envelope,) = world.sink.envelopes
    assert envelope.mail_from.startswith("b+seed.") and envelope.mail_from.endswith(f"@{BOUNCES}")
    (seed,) = world.sink.parsed()
    assert seed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"d={DOMAIN}" in re.sub(r"\s", "", seed["DKIM-Signature"])
    # Read back and cleared out of the seed mailbox.
    assert world.dovecot.count() == 0
    assert "Gmail reports no per-message complaints" in page
    assert "Google Postmaster Tools" in page


def test_a_domain_without_dmarc_fails_dmarc(
    editor_client, world, django_capture_on_commit_callbacks
):
    drop(world.zone, f"_dmarc.{DOMAIN}", "TXT")
    verdicts, page = run_check(editor_client, world.domain, django_capture_on_commit_callbacks)
    assert verdicts["dmarc"] == "fail"
    assert f"No DMARC record at _dmarc.{DOMAIN}" in page
    assert verdicts["dkim"] == verdicts["dkim_alignment"] == "pass"


def test_a_return_path_outside_the_from_domain_fails_spf_alignment(
    editor_client, world, settings, django_capture_on_commit_callbacks
):
    settings.BOUNCE_DOMAIN = "bounces.elsewhere.example"
    world.zone.records[("bounces.elsewhere.example.", "TXT")] = ['"v=spf1 ip4:192.0.2.0/24 -all"']
    world.zone.names.add("bounces.elsewhere.example.")
    verdicts, page = run_check(editor_client, world.domain, django_capture_on_commit_callbacks)
    assert verdicts["spf_alignment"] == "fail"
    assert "bounces.elsewhere.example is not under" in page
    assert verdicts["dkim_alignment"] == "pass"


def test_a_dns_that_does_not_answer_is_cannot_check_never_fail(
    editor_client, world, settings, django_capture_on_commit_callbacks
):
    settings.DNS_NAMESERVERS = [f"127.0.0.1:{free_port()}"]  # nobody listens there
    settings.DNS_LIFETIME_SECONDS = 1  # each unanswered question waits this long
    verdicts, page = run_check(editor_client, world.domain, django_capture_on_commit_callbacks)
    assert "fail" not in verdicts.values(), verdicts
    for key in ("spf", "dkim", "dmarc", "dkim_alignment", "spf_alignment", "ptr"):
        assert verdicts[key] == "unknown", key
    assert "Cannot check: no DNS answer" in page


def test_the_page_says_gmail_complaints_are_only_in_postmaster_tools(viewer_client, db):
    domain = SendingDomainFactory(domain=DOMAIN)
    page = viewer_client.get(f"/analytics/domains/{domain.pk}/readiness/").content.decode()
    assert "Gmail reports no per-message complaints" in page
    assert "Google Postmaster Tools" in page
    assert "Send a seed message and check" not in page  # viewers cannot send


def test_only_a_post_by_an_editor_starts_a_run(client, editor_user, viewer_user, settings):
    settings.READINESS_SEED_ADDRESS = "seed@example.org"
    settings.READINESS_IMAP_URL = "imap+plain://u:p@127.0.0.1:1/INBOX"
    domain = SendingDomainFactory(domain=DOMAIN)
    client.force_login(editor_user)
    assert client.get(f"/analytics/domains/{domain.pk}/readiness/run/").status_code == 405
    client.force_login(viewer_user)
    assert client.post(f"/analytics/domains/{domain.pk}/readiness/run/").status_code == 403
    assert not ReadinessRun.objects.exists()


def test_the_page_polls_a_running_check_and_stops_when_no_worker_finishes_it(
    editor_client, settings
):
    settings.READINESS_SEED_ADDRESS = "seed@example.org"
    settings.READINESS_IMAP_URL = "imap+plain://u:p@127.0.0.1:1/INBOX"
    domain = SendingDomainFactory(domain=DOMAIN)
    run = ReadinessRunFactory(domain=domain, token="t1")
    url = f"/analytics/domains/{domain.pk}/readiness/"
    partial = editor_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 2s"' in partial and "<html" not in partial
    assert "Checking since" in partial
    ReadinessRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(hours=1))
    partial = editor_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in partial and "no worker took it up" in partial
    # A new press replaces the abandoned run instead of waiting for it forever.
    editor_client.post(f"{url}run/")  # (the test's transaction never commits: no task runs)
    run.refresh_from_db()
    assert run.status == "error" and "No worker finished" in run.error
    assert ReadinessRun.objects.filter(domain=domain, status="running").count() == 1
