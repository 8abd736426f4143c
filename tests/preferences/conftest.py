import pytest

from core.recipient_links import PREFERENCES, UNSUBSCRIBE, recipient_token
from tests.support.factories import SubscriberFactory, TopicFactory


@pytest.fixture
def topics(db):
    return [
        TopicFactory(
            name="Weekly", slug="weekly", public_name="Weekly letter", description="Every Tuesday"
        ),
        TopicFactory(name="Events", slug="events", public_name="Events"),
    ]


@pytest.fixture
def subscriber(topics):
    return SubscriberFactory(
        active=True,
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        language="en",
        topics=topics,
    )


@pytest.fixture
def pref_token(subscriber):
    return recipient_token(PREFERENCES, subscriber_id=subscriber.pk)


@pytest.fixture
def unsub_token(subscriber):
    return recipient_token(UNSUBSCRIBE, subscriber_id=subscriber.pk)
