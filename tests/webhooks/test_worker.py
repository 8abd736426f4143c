"""The whole way, as deployed: a campaign sent by a real Celery worker writes delivery.sent
events; the webhooks queue's task, kicked when they commit, posts them signed."""

import time

import pytest

from campaigns.models import Campaign
from campaigns.services import campaign_start
from tests.support.factories import CampaignFactory, SendingConnectionFactory, make_audience
from tests.support.workers import Worker, purge_queue
from webhooks.models import WebhookMessage


@pytest.fixture
def hook_worker(transactional_db):
    purge_queue()
    worker = Worker(concurrency=2)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


@pytest.mark.worker
def test_a_campaign_sent_by_a_worker_reaches_the_endpoint_signed(
    hook_worker, subscribe, receiver, smtp_sink
):
    subscribe("delivery.sent", "campaign.finished")
    topic, _ = make_audience(30)
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    try:
        sent = receiver.wait_for("delivery.sent", 30, timeout=90)
    except AssertionError:
        states = list(WebhookMessage.objects.values_list("status", "attempts", "last_error"))
        raise AssertionError(f"{states}\n{hook_worker.output()}") from None
    assert all(r.verified for r in sent), hook_worker.output()
    assert len({r.id for r in sent}) == 30
    receiver.wait_for("campaign.finished", 1, timeout=30)
    deadline = time.monotonic() + 10
    while WebhookMessage.objects.exclude(status="delivered").exists():
        assert time.monotonic() < deadline, hook_worker.output()
        time.sleep(0.1)
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.FINISHED
