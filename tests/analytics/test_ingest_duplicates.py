"""A tracking hit that reaches the buffer twice counts once, even when both copies land in
the same flush (the web process re-sends a hit whose Redis connection broke before the
acknowledgement: see analytics.buffer._Pusher)."""

from analytics import buffer
from analytics.models import CampaignStats, DeliveryActivity, Event, LinkStats
from analytics.tracking import click_token, open_token

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"


def _duplicate_buffered_hits() -> None:
    """Each buffered line pushed a second time, as the re-send after a broken connection does."""
    r = buffer.client()
    lines = r.lrange(buffer.BUFFER_KEY, 0, -1)
    assert lines
    r.rpush(buffer.BUFFER_KEY, *lines)


def test_an_open_sent_twice_within_one_batch_counts_once(client, sent_campaign):
    campaign, _links, deliveries = sent_campaign
    # An hour after the send: a human open, not a scanner's instant fetch.
    client.get(f"/t/o/{open_token(deliveries[0].pk)}", HTTP_USER_AGENT=CHROME)
    _duplicate_buffered_hits()
    assert buffer.pending() == 2
    assert buffer.flush() == 2  # one batch
    assert Event.objects.filter(kind="opened").count() == 1
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.opens, stats.unique_opens) == (1, 1)
    assert DeliveryActivity.objects.get(delivery=deliveries[0]).opens == 1


def test_a_click_sent_twice_within_one_batch_counts_once(client, sent_campaign):
    campaign, links, deliveries = sent_campaign
    client.get(f"/t/c/{click_token(deliveries[1].pk, links[0].pk)}", HTTP_USER_AGENT=CHROME)
    _duplicate_buffered_hits()
    assert buffer.flush() == 2
    assert Event.objects.filter(kind="clicked").count() == 1
    assert CampaignStats.objects.get(campaign=campaign).clicks == 1
    assert LinkStats.objects.get(link=links[0]).clicks == 1
    assert DeliveryActivity.objects.get(delivery=deliveries[1]).clicks == 1
