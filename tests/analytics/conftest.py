import pytest

from tests.support.factories import create_sent_campaign


@pytest.fixture(autouse=True)
def _clean_tracking_buffer(settings):
    from analytics import buffer

    r = buffer.client()
    if r is not None:
        r.delete(
            buffer.BUFFER_KEY,
            buffer.PROCESSING_KEY,
            buffer.FACTS_KEY,
            buffer.FACTS_PROCESSING_KEY,
            buffer.DEAD_KEY,
            buffer.LOCK_KEY,
        )
    from analytics import tracking_views

    tracking_views._links.clear()
    yield


@pytest.fixture
def sent_campaign(db):
    """(campaign, links, deliveries): a campaign that went out to three readers."""
    return create_sent_campaign()
