"""What the sending tests share besides data: the test queue, Message-IDs, stale keys."""

from django.core.cache import cache

# Our workers and the tasks we send use a queue no other test worker listens to.
QUEUE = "campaigns-test"
# Claims expire after this many seconds, so a killed worker's rows come back quickly.
TTL = "3"


def message_id(delivery_id: int, campaign) -> str:
    """The Message-ID the pipeline gives a delivery (its install-unique tag included)."""
    from campaigns.messages import message_id_tag

    return f"<d{delivery_id}.c{campaign.pk}.{message_id_tag(campaign)}@sender.example>"


def forget_campaign_keys(campaign_id):
    """Test databases restart ids at 1: drop short-lived keys a previous run left for this id."""
    cache.delete_many([f"nfm:kick:{campaign_id}", f"nfm:campaign-alive:{campaign_id}"])
