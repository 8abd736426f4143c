"""Bounces and complaints that come back by mail reach the app: a campaign goes out over SMTP
with VERP envelope senders; delivery reports (RFC 3464, in Postfix's shape) and feedback-loop
complaints (RFC 5965's example, Microsoft JMRP, Yahoo CFL) land in a real Dovecot mailbox;
the beat task reads it over IMAP and the ledger, suppressions and rates change exactly as
with an ESP's webhook. Each message is read once; unreadable ones stay, listed."""

import pytest

from analytics.bounce_mail import verp_address, verp_delivery
from analytics.models import BounceMessage, Event
from analytics.tasks import bounce_mailbox_poll
from campaigns.models import Delivery
from campaigns.pipeline import campaign_send_work
from campaigns.services import campaign_start
from subscribers.models import Suppression, email_hash
from tests.support.dovecot import Dovecot
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    SendingDomainFactory,
    make_audience,
)

DSN = """\
Return-Path: <>
Delivered-To: {verp}
Date: Wed, 02 Dec 2026 10:00:00 +0000 (UTC)
From: MAILER-DAEMON@relay.sender.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {verp}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="B1.1764669600/relay.sender.example"

This is a MIME-encapsulated message.

--B1.1764669600/relay.sender.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host relay.sender.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--B1.1764669600/relay.sender.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.sender.example
X-Postfix-Queue-ID: 4ABCD1234
X-Postfix-Sender: rfc822; {verp}
Arrival-Date: Wed,  2 Dec 2026 09:59:59 +0000 (UTC)

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; {diagnostic}

--B1.1764669600/relay.sender.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <{verp}>
From: Sender <news@sender.example>
To: {rcpt}
Subject: News
Message-ID: {message_id}

--B1.1764669600/relay.sender.example--
"""

ARF = """\
From: <{reporter}>
Date: Wed, 02 Dec 2026 11:00:00 +0000
Subject: FW: News
To: <abuse@sender.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Wed, 02 Dec 2026 10:55:00 +0000.
For more information about this format please see
http://tools.ietf.org/html/rfc5965.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: {agent}
Version: 1
Original-Mail-From: <{verp}>
Original-Rcpt-To: <{rcpt}>
Arrival-Date: Wed, 02 Dec 2026 10:55:00 +0000
Reporting-MTA: dns; mail.example.org
Source-IP: 192.0.2.1

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

From: <news@sender.example>
Received: from relay.sender.example (192.0.2.1) by mail.example.org
To: {rcpt_shown}
Subject: News
Message-ID: {message_id}
X-NFM-Delivery: {delivery_id}
Date: Wed, 02 Dec 2026 10:50:00 +0000

Hello
--part1_13d.2e68ed54_boundary--
"""

AUTO_REPLY = """\
From: user1@example.org
To: {verp}
Subject: Out of office: News
Auto-Submitted: auto-replied
Date: Wed, 02 Dec 2026 12:00:00 +0000

I am away until Monday.
"""


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


@pytest.fixture
def mailbox(settings):
    dovecot = Dovecot().start()
    settings.BOUNCE_IMAP_URL = dovecot.url
    settings.BOUNCE_DOMAIN = "bounces.sender.example"
    try:
        yield dovecot
    finally:
        dovecot.stop()


def sent_campaign(smtp_sink, n=4):
    topic, _ = make_audience(n)
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "done"
    rows = {d.email: d for d in Delivery.objects.filter(campaign=campaign)}
    return campaign, rows


def test_each_message_leaves_with_a_signed_verp_envelope_sender(db, settings, smtp_sink):
    settings.BOUNCE_DOMAIN = "bounces.sender.example"
    _, rows = sent_campaign(smtp_sink, n=2)
    senders = {e.rcpt_tos[0]: e.mail_from for e in smtp_sink.envelopes}
    for address, delivery in rows.items():
        assert senders[address] == verp_address(delivery.pk, "bounces.sender.example")
        assert verp_delivery(senders[address]) == delivery.pk
    # A forged or altered address names nobody.
    forged = senders["user0@example.org"].replace("b+", "b+1")
    assert verp_delivery(forged) is None


def test_dsns_and_complaints_in_the_mailbox_change_ledger_suppressions_and_rates(
    db, smtp_sink, mailbox
):
    campaign, rows = sent_campaign(smtp_sink)
    verp = {e.rcpt_tos[0]: e.mail_from for e in smtp_sink.envelopes}
    hard, soft, blocked, complainer = (f"user{i}@example.org" for i in range(4))
    for rcpt, action, status, diagnostic in [
        (hard, "failed", "5.1.1", "550 5.1.1 <user0@example.org>: Recipient address rejected"),
        (soft, "delayed", "4.2.2", "452 4.2.2 Mailbox full"),
        (blocked, "failed", "5.7.26", "550 5.7.26 Unauthenticated email is not accepted"),
    ]:
        mailbox.append(
            crlf(
                DSN.format(
                    verp=verp[rcpt],
                    rcpt=rcpt,
                    action=action,
                    status=status,
                    diagnostic=diagnostic,
                    message_id=rows[rcpt].message_id,
                )
            )
        )
    # A JMRP complaint: the recipient is redacted, the original's headers name the delivery.
    mailbox.append(
        crlf(
            ARF.format(
                reporter="staff@hotmail.com",
                agent="Microsoft JMRP",
                verp="news@sender.example",
                rcpt="redacted@hotmail.com",
                rcpt_shown="redacted",
                message_id=rows[complainer].message_id,
                delivery_id=rows[complainer].pk,
            )
        )
    )
    mailbox.append(crlf(AUTO_REPLY.format(verp=verp[soft])))
    mailbox.append(b"Subject: hello\r\n\r\nnot a bounce at all\r\n")

    assert bounce_mailbox_poll() == 6  # the beat task, as the worker runs it

    kinds = sorted(BounceMessage.objects.values_list("kind", flat=True))
    assert kinds == sorted(["dsn", "dsn", "dsn", "arf", "auto-reply", "unparseable"])
    events = {
        (e.delivery_id, e.kind, e.bounce_type)
        for e in Event.objects.filter(campaign_id=campaign.pk)
    }
    assert (rows[hard].pk, "bounced", "hard") in events
    assert (rows[blocked].pk, "bounced", "sender") in events
    assert (rows[soft].pk, "deferred", "") in events
    assert any(d == rows[complainer].pk and k == "complained" for d, k, _ in events)
    suppressed = set(Suppression.objects.values_list("email_hash", "reason"))
    assert (email_hash(hard), "hard_bounce") in suppressed
    assert (email_hash(complainer), "complaint") in suppressed
    assert not any(h == email_hash(soft) for h, _ in suppressed)  # soft: counted, kept
    assert not any(h == email_hash(blocked) for h, _ in suppressed)  # our fault, not theirs

    # Read ones moved out; the unreadable one stays, flagged, and is listed.
    assert mailbox.count("INBOX") == 1 and mailbox.count("Processed") == 5
    # A second poll files nothing twice.
    before = Event.objects.count()
    assert bounce_mailbox_poll() == 0
    assert Event.objects.count() == before


def test_yahoo_and_rfc5965_reports_found_through_the_verp_address(db, smtp_sink, mailbox):
    campaign, rows = sent_campaign(smtp_sink, n=2)
    verp = {e.rcpt_tos[0]: e.mail_from for e in smtp_sink.envelopes}
    # Yahoo CFL keeps the original's Return-Path (our VERP address) but strips our headers.
    report = ARF.format(
        reporter="feedback@arf.mail.yahoo.com",
        agent="Yahoo!-Mail-Feedback/2.0",
        verp=verp["user1@example.org"],
        rcpt="user1@example.org",
        rcpt_shown="user1@example.org",
        message_id="<unrelated@elsewhere>",
        delivery_id="",
    ).replace("X-NFM-Delivery: \n", f"Return-Path: <{verp['user1@example.org']}>\n")
    mailbox.append(crlf(report))
    assert bounce_mailbox_poll() == 1
    event = Event.objects.get(campaign_id=campaign.pk, kind="complained")
    assert event.delivery_id == rows["user1@example.org"].pk


def test_the_bounce_page_lists_what_the_mailbox_held_unreadable_ones_flagged(
    db, smtp_sink, mailbox, viewer_client
):
    mailbox.append(b"Subject: =?utf-8?q?caf=C3=A9?=\r\nFrom: x@example.org\r\n\r\n?\r\n")
    bounce_mailbox_poll()
    page = viewer_client.get("/analytics/bounces/").content.decode()
    assert "1 message could not be read" in page and "café" in page
    assert (
        viewer_client.get("/analytics/bounces/?kind=dsn").content.decode().count('data-kind="') == 0
    )
    assert viewer_client.get("/analytics/bounces/?kind=%00&page=x").status_code == 200


def test_through_a_real_postfix_relay_mail_arrives_signed_and_its_dsn_comes_back(
    db, settings, smtp_sink, admin_client
):
    """Postfix relays to the sink; when the sink refuses a recipient after Postfix took the
    message, Postfix writes the DSN and delivers it to the VERP address: the Maildir that
    Dovecot serves. A domain Postfix refuses itself (error transport) is refused at RCPT,
    synchronously, and filed the same way."""
    import time

    from analytics.models import DkimKey
    from tests.analytics.dns_server import FixedZoneServer
    from tests.campaigns.test_dkim import publish, verify_all
    from tests.support.postfix import Postfix

    dovecot = Dovecot().start()
    postfix = Postfix(
        sink_port=smtp_sink.port,
        mailbox_root=dovecot.root / "mail",
        mailbox_user=Dovecot.user,
        bounce_domain="bounces.sender.example",
    )
    try:
        postfix.start()
        settings.BOUNCE_IMAP_URL = dovecot.url
        settings.BOUNCE_DOMAIN = "bounces.sender.example"
        domain = SendingDomainFactory(domain="sender.example")
        admin_client.post(f"/analytics/domains/{domain.pk}/dkim/", {"algorithm": "rsa"})
        key = DkimKey.objects.get(domain=domain)

        topic, _ = make_audience(2)
        make_audience(1, topic=topic, prefix="bad")  # the sink answers 550 5.1.1 to Postfix
        make_audience(1, topic=topic, prefix="gone", domain="gone.example")
        connection = SendingConnectionFactory(sink=smtp_sink, name="postfix")
        connection.options = {"host": "127.0.0.1", "port": postfix.port}
        connection.save()
        campaign = CampaignFactory(topic=topic, connection=connection)
        campaign_start(campaign=campaign)
        assert campaign_send_work(campaign_id=campaign.pk) == "done"

        received = smtp_sink.wait_for(2, timeout=30)
        assert sorted(m["To"] for m in received) == ["user0@example.org", "user1@example.org"]
        with FixedZoneServer({}) as zone:
            publish(zone, key.record_name, key.record_value)
            assert verify_all([e.content for e in smtp_sink.envelopes], zone)

        bad = Delivery.objects.get(campaign=campaign, email="bad0@example.org")
        gone = Delivery.objects.get(campaign=campaign, email="gone0@gone.example")
        assert bad.status == "sent" and gone.status == "failed"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            bounce_mailbox_poll()
            if Event.objects.filter(delivery_id=bad.pk, kind="bounced").exists():
                break
            time.sleep(0.5)
        else:
            raise AssertionError(postfix.log()[-3000:])
    finally:
        postfix.stop()
        dovecot.stop()
    event = Event.objects.get(delivery_id=bad.pk, kind="bounced")
    assert (event.esp, event.bounce_type) == ("smtp-dsn", "hard") and "5.1.1" in event.reason
    refused = Event.objects.get(delivery_id=gone.pk, kind="bounced")
    assert (refused.esp, refused.bounce_type) == ("smtp", "hard")
    for address in ("bad0@example.org", "gone0@gone.example"):
        assert Suppression.objects.filter(email_hash=email_hash(address)).exists()
    assert BounceMessage.objects.get().kind == "dsn"
