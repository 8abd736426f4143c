import pytest
from django.utils import timezone

from core.recipient_links import PREFERENCES, UNSUBSCRIBE, recipient_token
from subscribers.models import Subscriber, Subscription, Topic


@pytest.fixture
def topics(db):
    return [
        Topic.objects.create(
            name="Weekly", slug="weekly", public_name="Weekly letter", description="Every Tuesday"
        ),
        Topic.objects.create(name="Events", slug="events", public_name="Events"),
    ]


@pytest.fixture
def subscriber(topics):
    person = Subscriber.objects.create(
        email="ada@example.com",
        first_name="Ada",
        last_name="Lovelace",
        status=Subscriber.Status.ACTIVE,
        confirmed_at=timezone.now(),
        language="en",
    )
    for topic in topics:
        Subscription.objects.create(subscriber=person, topic=topic)
    return person


@pytest.fixture
def pref_token(subscriber):
    return recipient_token(PREFERENCES, subscriber_id=subscriber.pk)


@pytest.fixture
def unsub_token(subscriber):
    return recipient_token(UNSUBSCRIBE, subscriber_id=subscriber.pk)
