"""The one refusal classifier, over replies real receivers send (as ESPs and smtplib pass
them on: with or without the code in front, with the ESP's own prefix)."""

import pytest

from analytics.bounces import HARD, SENDER, SOFT, bounce_kind, reply_parts

REPLIES = [
    # --- the address is dead: suppress at once ---
    (550, "", "5.1.1 The email account that you tried to reach does not exist.", HARD),
    (None, "", "smtp; 550 5.1.1 <reader@example.com>: Recipient address rejected", HARD),
    (None, "", "550 5.1.1 <x@yahoo.com>: Recipient address rejected: User unknown", HARD),
    (550, "5.2.1", "The email account that you tried to reach is disabled.", HARD),
    (None, "", "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", HARD),
    (None, "", "550 5.5.0 Requested action not taken: mailbox unavailable", HARD),
    (None, "", "554 delivery error: dd This user doesn't have a yahoo.com account", HARD),
    (None, "", "552 1 Requested mail action aborted, mailbox not found", HARD),
    (None, "", "555 5.7.1 User unknown 'bounce@example.com'.", HARD),
    (
        None,
        "",
        "bounced (550 5.1.1 The email account that you tried to reach does not exist.)",
        HARD,
    ),
    (
        None,
        "",
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address",
        HARD,
    ),
    (None, "", "Host or domain name not found", HARD),
    # --- temporary, or the message, not the address: kept, counted ---
    (552, "5.2.2", "The email account that you tried to reach is over quota.", SOFT),
    (None, "", "552 5.2.2 Mailbox full", SOFT),
    (None, "", "452 4.2.2 The email account that you tried to reach is over quota.", SOFT),
    (421, "4.7.0", "Try again later, closing connection. (EHLO) - gsmtp", SOFT),
    (
        None,
        "",
        "421 4.7.0 [TSS04] Messages from 203.0.113.7 temporarily deferred due to "
        "unexpected volume or user complaints",
        SOFT,
    ),
    (None, "", "451 4.7.1 Greylisting in action, please come back later", SOFT),
    (450, "", "4.2.0 The email account that you tried to reach is temporarily unavailable.", SOFT),
    (None, "", "552 5.3.4 Message size exceeds fixed limit", SOFT),
    (None, "", "250 2.0.0 OK 1700000000 a1-20020a.123 - gsmtp", SOFT),
    # --- the receiver refused us: counts against the connection and sending domain ---
    (
        None,
        "",
        "550-5.7.26 This mail has been blocked because the sender is unauthenticated. "
        "Gmail requires all senders to authenticate with either SPF or DKIM.",
        SENDER,
    ),
    (
        550,
        "5.7.26",
        "Unauthenticated email from news.example.com is not accepted due to domain's DMARC policy.",
        SENDER,
    ),
    (
        None,
        "",
        "550 5.7.515 Access denied, sending domain news.example.com doesn't meet the "
        "required authentication level.",
        SENDER,
    ),
    (
        None,
        "",
        "550 5.7.509 Access denied, sending domain example.com does not pass DMARC "
        "verification and has a DMARC policy of reject.",
        SENDER,
    ),
    (
        554,
        "5.7.9",
        "Message not accepted for policy reasons. See https://senders.yahooinc.com/error-codes",
        SENDER,
    ),
    (
        None,
        "",
        "550 5.7.1 Unfortunately, messages from [203.0.113.7] weren't sent. Please "
        "contact your Internet service provider since part of their network is on our block "
        "list (S3150).",
        SENDER,
    ),
    (
        None,
        "",
        "554 5.7.1 Service unavailable; Client host [203.0.113.7] blocked using zen.spamhaus.org",
        SENDER,
    ),
    (
        None,
        "",
        "550-5.7.1 [203.0.113.7] Our system has detected an unusual rate of "
        "unsolicited mail originating from your IP address.",
        SENDER,
    ),
    (None, "", "550 5.7.1 SPF check failed", SENDER),
    (None, "", "550 5.7.1 DKIM signature did not verify", SENDER),
    (None, "", "554 5.7.1 [CS01] Message rejected due to local policy", SENDER),
    (None, "", "550 5.7.606 Access denied, banned sending IP [203.0.113.7].", SENDER),
    (
        None,
        "",
        "554 Service unavailable; Client host [203.0.113.7] blocked using Barracuda Reputation",
        SENDER,
    ),
    (None, "", "550 Rejected by header based Anti-Spoofing policy", SENDER),
    (None, "", "554 5.7.1 <x@example.net>: Relay access denied", SENDER),
    (
        None,
        "",
        "550 5.1.8 <bounce@news.example.com>: Sender address rejected: Domain not found",
        SENDER,
    ),
    (None, "", "554 5.6.0 Mail message is malformed. Not accepted.", SENDER),
]


@pytest.mark.parametrize(("code", "enhanced", "text", "expected"), REPLIES)
def test_it_classifies_what_real_receivers_reply(code, enhanced, text, expected):
    assert bounce_kind(smtp_code=code, enhanced=enhanced, text=text) == expected


def test_a_4xx_is_soft_whatever_its_text_says():
    # The pipeline retries what is soft: a temporary refusal must never read as final.
    text = "4.7.26 Unauthenticated email is not accepted due to domain's DMARC policy"
    assert bounce_kind(smtp_code=421, text=text) == SOFT


def test_a_bare_code_without_text_is_judged_by_its_class():
    assert bounce_kind(smtp_code=550) == HARD
    assert bounce_kind(smtp_code=451) == SOFT
    assert bounce_kind(smtp_code=None, enhanced="5.7.1") == SENDER
    assert bounce_kind(smtp_code=None) == HARD


def test_it_finds_the_codes_wherever_the_esp_put_them():
    assert reply_parts("smtp;550 5.1.1 user unknown") == (550, "5.1.1")
    assert reply_parts("bounced (421-4.7.0 try later)") == (421, "4.7.0")
    assert reply_parts("5.2.2 mailbox full") == (None, "5.2.2")
    assert reply_parts("blocked from 10.5.1.1 at 2026") == (None, "")
    assert reply_parts("") == (None, "")
