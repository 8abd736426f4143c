"""The bounce mailbox files what one poll fetched in one ingestion, not one a message: a
mailbox full of delivery reports is a handful of transactions, each message still filed once
(its BounceMessage row commits with its facts)."""

import math

from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import bounce_mailbox
from analytics.models import BounceMessage, Event
from analytics.tasks import bounce_mailbox_poll
from subscribers.models import Suppression
from tests.analytics.test_bounce_mailbox import DSN, crlf, sent_campaign
from tests.analytics.test_bounce_mailbox import mailbox as mailbox  # the fixture


def _ingestions(queries) -> int:
    return sum("pg_advisory_xact_lock" in q["sql"] for q in queries)


def test_a_mailbox_full_of_bounces_is_filed_a_fetched_batch_at_a_time(
    db, smtp_sink, mailbox, monkeypatch
):
    monkeypatch.setattr(bounce_mailbox, "BATCH", 5)  # the messages fetched per IMAP FETCH
    _, rows = sent_campaign(smtp_sink, n=12)
    verp = {e.rcpt_tos[0]: e.mail_from for e in smtp_sink.envelopes}
    for rcpt, delivery in rows.items():
        mailbox.append(
            crlf(
                DSN.format(
                    verp=verp[rcpt],
                    rcpt=rcpt,
                    action="failed",
                    status="5.1.1",
                    diagnostic=f"550 5.1.1 <{rcpt}>: Recipient address rejected",
                    message_id=delivery.message_id,
                )
            )
        )
    with CaptureQueriesContext(connection) as queries:
        assert bounce_mailbox_poll() == 12
    assert _ingestions(queries) == math.ceil(12 / 5)
    assert Event.objects.filter(kind="bounced", bounce_type="hard").count() == 12
    assert Suppression.objects.count() == 12
    assert BounceMessage.objects.count() == 12
    assert mailbox.count("INBOX") == 0 and mailbox.count("Processed") == 12
    assert bounce_mailbox_poll() == 0
