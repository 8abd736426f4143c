"""Exactly once under the faults production meets: a lost "250 OK", a reply stalled past the
lease, a worker frozen past it, the cache flushed mid-send, an SMTP outage, explicit
refusals. Real worker processes on the real Redis broker, a real SMTP server on loopback
told to misbehave; every count is taken at the server."""

import os
import signal
import time
from collections import Counter

import pytest
import redis
from django.conf import settings

from campaigns.dispatch import dispatch_due
from campaigns.models import Campaign, Delivery
from campaigns.services import campaign_start, delivery_resolve_unknown
from subscribers.models import Subscriber, Suppression, email_hash
from tests.support.factories import CampaignFactory, SendingConnectionFactory, make_audience
from tests.support.sending import QUEUE, TTL, forget_campaign_keys, message_id
from tests.support.workers import Worker

from .test_worker_kill import _counts, _wait


def _settled(campaign):
    dispatch_due()  # beat's tick: reconcile, finish, kick
    counts = _counts(campaign)
    return not (counts["pending"] or counts["claimed"] or counts["sending"])


def _received(sink) -> Counter:
    return Counter(sink.recipients())


def _workers(n=1, **env):
    workers = [Worker(concurrency=1, CELERY_QUEUE=QUEUE, CAMPAIGN_CLAIM_TTL=TTL, **env)]
    workers += [
        Worker(concurrency=1, CELERY_QUEUE=QUEUE, CAMPAIGN_CLAIM_TTL=TTL, **env)
        for _ in range(n - 1)
    ]
    for worker in workers:
        worker.wait_ready()
    return workers


def _stop(workers):
    for worker in workers:
        worker.stop()


@pytest.mark.worker
def test_a_lost_250_after_the_final_dot_becomes_unknown_and_is_never_sent_twice(
    transactional_db, smtp_sink, own_queue, editor_client
):
    topic, _ = make_audience(30)
    make_audience(4, topic=topic, prefix="lost")
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    forget_campaign_keys(campaign.pk)
    workers = _workers()
    try:
        campaign_start(campaign=campaign)
        _wait(lambda: _settled(campaign), 60, "the send to settle")
    finally:
        _stop(workers)

    received = _received(smtp_sink)
    assert all(n == 1 for n in received.values()), received.most_common(3)
    assert len(received) == 34  # the server really took the four "lost" ones
    unknown = Delivery.objects.filter(campaign=campaign, status="unknown")
    assert sorted(d.email for d in unknown) == [f"lost{i}@example.org" for i in range(4)]
    assert all("after the message was sent" in d.error for d in unknown)
    assert all(d.message_id == message_id(d.pk, campaign) for d in unknown)
    assert _counts(campaign)["sent"] == 30
    assert Campaign.objects.get(pk=campaign.pk).status == "running"  # waits for a decision

    # The campaign page lists each one with its Message-ID ...
    page = editor_client.get(f"/campaigns/{campaign.pk}/").content.decode()
    for d in unknown:
        assert d.message_id.replace("<", "&lt;").replace(">", "&gt;") in page
    # ... and a person accepts them (the server's log shows all four arrived).
    response = editor_client.post(
        f"/campaigns/{campaign.pk}/resolve/",
        {"decision": "accept", "ids": [d.pk for d in unknown]},
    )
    assert response.status_code == 302
    dispatch_due()
    assert Campaign.objects.get(pk=campaign.pk).status == "finished"
    accepted = Delivery.objects.filter(campaign=campaign, email__startswith="lost")
    assert {d.resolution for d in accepted} == {"accepted"}
    assert len(_received(smtp_sink)) == 34


@pytest.mark.worker
def test_a_reply_stalled_past_the_lease_keeps_the_claim_and_sends_each_once(
    transactional_db, smtp_sink, own_queue
):
    smtp_sink.stall = 3 * int(TTL)  # the DATA answer comes three leases late
    topic, _ = make_audience(60)
    make_audience(2, topic=topic, prefix="stall")
    campaign = CampaignFactory(
        topic=topic, connection=SendingConnectionFactory(sink=smtp_sink), parallelism=2
    )
    forget_campaign_keys(campaign.pk)
    workers = _workers(2)
    try:
        campaign_start(campaign=campaign)

        def done():
            dispatch_due()  # reconciliation runs while the senders are blocked
            return Campaign.objects.get(pk=campaign.pk).status == "finished"

        _wait(done, 90, "the campaign to finish")
    finally:
        _stop(workers)
    received = _received(smtp_sink)
    assert len(received) == 62
    assert all(n == 1 for n in received.values()), received.most_common(3)
    assert _counts(campaign) == Counter({"sent": 62})


def _freeze(worker):
    os.killpg(worker.process.pid, signal.SIGSTOP)


def _thaw(worker):
    os.killpg(worker.process.pid, signal.SIGCONT)


@pytest.mark.worker
def test_a_worker_frozen_past_its_lease_stops_on_waking_and_nobody_gets_two(
    transactional_db, smtp_sink, own_queue
):
    smtp_sink.delay = 0.01
    topic, subs = make_audience(400)
    campaign = CampaignFactory(
        topic=topic, connection=SendingConnectionFactory(sink=smtp_sink), parallelism=2
    )
    forget_campaign_keys(campaign.pk)
    frozen, other = _workers(2)
    try:
        campaign_start(campaign=campaign)
        _wait(lambda: len(smtp_sink.messages) >= 60, 60, "the send to be under way")
        _freeze(frozen)
        at_freeze = len(smtp_sink.messages)
        time.sleep(3 * int(TTL))  # its lease lapses; the other worker takes its rows
        dispatch_due()
        _thaw(frozen)
        _wait(lambda: _settled(campaign), 120, "the send to settle", every=0.5)
    finally:
        _thaw(frozen)
        _stop([frozen, other])
    assert at_freeze < 400, "finished before the freeze: nothing was tested"
    received = _received(smtp_sink)
    assert all(n == 1 for n in received.values()), received.most_common(3)
    counts = _counts(campaign)
    # At most the one row the frozen sender held in handoff is ambiguous, and it is shown.
    assert counts["unknown"] <= 1
    assert counts["sent"] + counts["unknown"] == 400
    assert set(received) <= {s.email for s in subs}
    assert len(received) >= counts["sent"]
    for row in Delivery.objects.filter(campaign=campaign, status="sent"):
        assert received[row.email] == 1


@pytest.mark.worker
def test_a_cache_flush_mid_send_releases_no_live_claim(transactional_db, smtp_sink, own_queue):
    smtp_sink.delay = 0.01
    topic, _ = make_audience(300)
    campaign = CampaignFactory(
        topic=topic, connection=SendingConnectionFactory(sink=smtp_sink), parallelism=2
    )
    forget_campaign_keys(campaign.pk)
    workers = _workers(2)
    try:
        campaign_start(campaign=campaign)
        _wait(lambda: len(smtp_sink.messages) >= 40, 60, "the send to be under way")
        # A Redis restart without persistence, a FLUSHDB or an eviction: the cache is empty.
        redis.Redis.from_url(settings.CACHES["default"]["LOCATION"]).flushdb()
        time.sleep(int(TTL) + 1)
        dispatch_due()
        _wait(lambda: _settled(campaign), 120, "the send to settle", every=0.5)
    finally:
        _stop(workers)
    received = _received(smtp_sink)
    assert len(received) == 300
    assert all(n == 1 for n in received.values()), received.most_common(3)
    assert _counts(campaign) == Counter({"sent": 300})


@pytest.mark.worker
def test_an_smtp_outage_fails_nobody_and_everyone_gets_one_after_it(
    transactional_db, smtp_sink, own_queue
):
    smtp_sink.delay = 0.01
    topic, _ = make_audience(200)
    campaign = CampaignFactory(
        topic=topic, connection=SendingConnectionFactory(sink=smtp_sink), parallelism=2
    )
    forget_campaign_keys(campaign.pk)
    workers = _workers(2)
    try:
        campaign_start(campaign=campaign)
        _wait(lambda: len(smtp_sink.messages) >= 30, 60, "the send to be under way")
        smtp_sink.down()
        down_at = time.monotonic()

        def waiting():
            dispatch_due()
            return (
                "Waiting for the sending server"
                in Campaign.objects.get(pk=campaign.pk).status_reason
            )

        _wait(waiting, 30, "the campaign to say it waits for the server")
        time.sleep(max(0, 8 - (time.monotonic() - down_at)))
        assert _counts(campaign)["failed"] == 0
        smtp_sink.up()
        _wait(lambda: _settled(campaign), 120, "the send to settle after the outage", every=0.5)
        # A message whose connection died with the server after its body went out is
        # "unknown" (at most one per sender), never resent blindly: decide as a person would,
        # from the server's log.
        unknown = list(Delivery.objects.filter(campaign=campaign, status="unknown"))
        assert len(unknown) <= 2, unknown
        arrived = set(smtp_sink.recipients())
        delivery_resolve_unknown(
            campaign=campaign, resend=False, ids=[d.pk for d in unknown if d.email in arrived]
        )
        delivery_resolve_unknown(campaign=campaign, resend=True)

        def finished():
            dispatch_due()
            return Campaign.objects.get(pk=campaign.pk).status == "finished"

        _wait(finished, 60, "the campaign to finish", every=0.5)
    finally:
        _stop(workers)
    received = _received(smtp_sink)
    counts = _counts(campaign)
    assert all(n == 1 for n in received.values()), received.most_common(3)
    assert len(received) == 200
    assert counts["failed"] == 0
    assert counts["sent"] == 200
    campaign.refresh_from_db()
    assert campaign.connection_down_since is None and campaign.status_reason == ""


@pytest.mark.worker
def test_explicit_refusals_fail_once_and_hard_ones_suppress_the_address(
    transactional_db, smtp_sink, own_queue
):
    topic, _ = make_audience(20)
    make_audience(3, topic=topic, prefix="bad")
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    forget_campaign_keys(campaign.pk)
    workers = _workers()
    try:
        campaign_start(campaign=campaign)

        def finished():
            dispatch_due()
            return Campaign.objects.get(pk=campaign.pk).status == "finished"

        _wait(finished, 60, "the campaign to finish")
    finally:
        _stop(workers)
    received = _received(smtp_sink)
    assert len(received) == 20 and all(n == 1 for n in received.values())
    failed = Delivery.objects.filter(campaign=campaign, status="failed")
    assert sorted(d.email for d in failed) == [f"bad{i}@example.org" for i in range(3)]
    assert all("550" in d.error for d in failed)
    for d in failed:  # the synchronous 5xx went through the bounce feedback path
        assert Suppression.objects.filter(email_hash=email_hash(d.email)).exists()
        assert Subscriber.objects.get(email=d.email).status == Subscriber.Status.BOUNCED


@pytest.mark.worker
def test_pause_takes_effect_within_a_second(transactional_db, smtp_sink, own_queue, editor_client):
    topic, _ = make_audience(400)
    connection = SendingConnectionFactory(sink=smtp_sink, rate_per_second=40)
    campaign = CampaignFactory(topic=topic, connection=connection, parallelism=2)
    forget_campaign_keys(campaign.pk)
    workers = _workers(2)
    try:
        campaign_start(campaign=campaign)
        _wait(lambda: len(smtp_sink.messages) >= 20, 60, "the send to be under way")
        response = editor_client.post(f"/campaigns/{campaign.pk}/pause/")
        assert response.status_code == 302
        paused_at = time.time()
        time.sleep(3)
    finally:
        _stop(workers)
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"
    late = [t for t in smtp_sink.times if t > paused_at + 1.0]
    assert late == [], f"{len(late)} messages arrived more than a second after the pause"
    counts = _counts(campaign)
    assert counts["sent"] == len(smtp_sink.messages)
    assert counts["claimed"] == counts["sending"] == 0  # given back, not held
