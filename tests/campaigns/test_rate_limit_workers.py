"""A connection's rate limit holds across two real worker processes sending one campaign."""

import re
from pathlib import Path

import pytest

from campaigns.models import Campaign
from campaigns.services import campaign_start
from tests.support.factories import CampaignFactory, SendingConnectionFactory, make_audience
from tests.support.sending import QUEUE, forget_campaign_keys
from tests.support.workers import Worker

from .test_worker_kill import _wait

RATE = 25


@pytest.mark.worker
def test_two_workers_share_one_rate_limit(transactional_db, smtp_sink, own_queue):
    topic, _ = make_audience(150)
    campaign = CampaignFactory(
        topic=topic,
        connection=SendingConnectionFactory(sink=smtp_sink, rate_per_second=RATE),
        parallelism=2,
    )
    forget_campaign_keys(campaign.pk)
    # Short turns: each sending task hands over after a second, so both processes take turns
    # sending whatever the broker's task distribution (under load one could do it all).
    workers = [
        Worker(concurrency=1, CELERY_QUEUE=QUEUE, CAMPAIGN_SEND_TIME_BUDGET="1") for _ in range(2)
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        campaign_start(campaign=campaign)
        _wait(
            lambda: Campaign.objects.get(pk=campaign.pk).status == "finished",
            90,
            "the campaign to finish",
        )
    finally:
        for worker in workers:
            worker.stop()
    # Both processes really sent (each log shows a campaign_send that worked).
    for worker in workers:
        assert re.search(r"campaign_send\[.*\] succeeded", Path(worker.log).read_text())
    times = sorted(smtp_sink.times)
    assert len(times) == 150
    # In any one-second window, at most the rate: grants are 1/rate apart (GCRA). Arrival at
    # the server adds the jitter of one send, so one message's worth of slack.
    worst = max(sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times))
    assert worst <= RATE + 1, worst
    assert times[-1] - times[0] >= (150 / RATE) - 1.5
