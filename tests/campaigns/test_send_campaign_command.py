import pytest
from django.core.management import CommandError, call_command

from campaigns.models import Campaign
from tests.support.factories import CampaignFactory, SendingConnectionFactory, make_audience
from tests.support.sending import QUEUE, forget_campaign_keys


@pytest.mark.worker
def test_send_campaign_wait_starts_it_and_prints_progress_until_it_finishes(
    transactional_db,
    smtp_sink,
    own_queue,
    capsys,
):
    from tests.support.workers import Worker

    topic, _ = make_audience(40)
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    forget_campaign_keys(campaign.pk)
    worker = Worker(concurrency=1, CELERY_QUEUE=QUEUE)
    try:
        worker.wait_ready()
        call_command("send_campaign", str(campaign.pk), "--wait", "--interval", "0.2")
    finally:
        worker.stop()
    out = capsys.readouterr().out
    assert "Started “Launch”: 40 recipients." in out
    assert "finished: 40/40 sent (100%)" in out
    assert len(smtp_sink.messages) == 40
    assert Campaign.objects.get(pk=campaign.pk).status == "finished"


def test_send_campaign_refuses_unknown_and_finished_campaigns(db):
    with pytest.raises(CommandError, match="No campaign with id 999"):
        call_command("send_campaign", "999")
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="finished")
    with pytest.raises(CommandError, match="finished: it cannot be started"):
        call_command("send_campaign", str(campaign.pk))
