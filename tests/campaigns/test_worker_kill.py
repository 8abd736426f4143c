"""kill -9 a real worker in the middle of a campaign (real Redis, real SMTP sink), restart,
and every recipient ends up with exactly one message."""

import time
from collections import Counter

import pytest

from campaigns.dispatch import dispatch_due
from campaigns.models import Campaign, Delivery
from campaigns.services import campaign_start, delivery_resolve_unknown
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    SuppressionFactory,
    make_audience,
)
from tests.support.sending import QUEUE, TTL, forget_campaign_keys, message_id
from tests.support.workers import Worker


def _wait(condition, timeout, what, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def _counts(campaign):
    return Counter(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True))


@pytest.mark.worker
def test_a_worker_killed_mid_campaign_leaves_every_recipient_with_exactly_one_message(
    transactional_db, smtp_sink, own_queue
):
    smtp_sink.delay = 0.004  # slow enough that the kill lands in the middle of the send
    topic, subs = make_audience(600)
    campaign = CampaignFactory(
        topic=topic, connection=SendingConnectionFactory(sink=smtp_sink), parallelism=2
    )
    forget_campaign_keys(campaign.pk)
    worker = Worker(concurrency=2, CELERY_QUEUE=QUEUE, CAMPAIGN_CLAIM_TTL=TTL)
    try:
        worker.wait_ready()
        campaign_start(campaign=campaign)
        _wait(lambda: len(smtp_sink.messages) >= 150, 60, "the send to be under way")
        worker.kill()
    finally:
        worker.stop()
    killed_at = len(smtp_sink.messages)
    assert killed_at < 600, "the campaign finished before the kill: nothing was tested"

    # A suppression added while the campaign is interrupted: respected after the restart.
    late = subs[-1]
    SuppressionFactory(hash_of=late.email, reason="complaint")

    time.sleep(int(TTL) + 1)  # the dead worker's claims expire
    restarted = Worker(concurrency=2, CELERY_QUEUE=QUEUE, CAMPAIGN_CLAIM_TTL=TTL)
    try:
        restarted.wait_ready()
        report = dispatch_due()  # what beat runs every few seconds: reconcile, then kick
        assert campaign.pk in report["running"]

        def settled():
            dispatch_due()
            counts = _counts(campaign)
            return not (counts["pending"] or counts["claimed"] or counts["sending"])

        _wait(settled, 120, "the restarted worker to finish the campaign", every=1)

        # At most one row per killed pool process can be ambiguous; each is visible, with the
        # deterministic Message-ID an operator looks up in the ESP's (here: the sink's) log.
        unknown = list(Delivery.objects.filter(campaign=campaign, status="unknown"))
        assert len(unknown) <= 2
        assert all("may or may not" in d.error for d in unknown)
        received_ids = {m["Message-ID"] for m in smtp_sink.parsed()}
        delivery_resolve_unknown(
            campaign=campaign,
            resend=False,
            ids=[d.pk for d in unknown if message_id(d.pk, campaign) in received_ids],
        )
        delivery_resolve_unknown(campaign=campaign, resend=True)

        def finished():
            dispatch_due()  # beat's periodic tick, which keeps running campaigns moving
            return Campaign.objects.get(pk=campaign.pk).status == "finished"

        _wait(finished, 60, "the campaign to finish", every=1)
    finally:
        restarted.stop()

    received = Counter(smtp_sink.recipients())
    expected = {s.email for s in subs[:-1]}
    assert set(received) == expected | ({late.email} if received.get(late.email) else set())
    assert all(n == 1 for n in received.values()), [e for e, n in received.items() if n > 1]
    counts = _counts(campaign)
    assert counts["sent"] == len(received)
    if late.email not in received:
        assert Delivery.objects.get(campaign=campaign, subscriber=late).status == "skipped"
    assert sum(counts.values()) == 600
