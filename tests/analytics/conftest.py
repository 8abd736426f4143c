from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.models import Link
from campaigns.models import Campaign, Delivery, SendingConnection
from subscribers.models import Subscriber, email_hash


@pytest.fixture(autouse=True)
def _clean_tracking_buffer(settings):
    from analytics import buffer

    r = buffer.client()
    if r is not None:
        r.delete(buffer.BUFFER_KEY, buffer.PROCESSING_KEY, buffer.LOCK_KEY)
    from analytics import tracking_views

    tracking_views._links.clear()
    yield


def make_campaign(
    *,
    name="Spring sale",
    domain="news.example.com",
    status="finished",
    n=3,
    sent_ago=timedelta(hours=2),
):
    connection, _ = SendingConnection.objects.get_or_create(
        name=f"conn-{domain}", defaults={"sending_domain": domain}
    )
    campaign = Campaign.objects.create(
        name=name, status=status, connection=connection, from_email=f"hello@{domain}"
    )
    links = [
        Link.objects.create(campaign=campaign, index=i, url=url)
        for i, url in enumerate(["https://shop.example.org/sale", "https://example.org/blog?x=1"])
    ]
    deliveries = []
    for i in range(n):
        email = f"reader{i}@{['gmail.com', 'outlook.com', 'example.net'][i % 3]}"
        subscriber, _ = Subscriber.objects.get_or_create(
            email=email, defaults={"status": Subscriber.Status.ACTIVE}
        )
        deliveries.append(
            Delivery.objects.create(
                campaign=campaign,
                subscriber=subscriber,
                email=email,
                email_hash=email_hash(email),
                domain=email.split("@")[1],
                status=Delivery.Status.SENT,
                sent_at=timezone.now() - sent_ago,
                message_id=f"<msg-{campaign.pk}-{i}@{domain}>",
            )
        )
    return campaign, links, deliveries


@pytest.fixture
def sent_campaign(db):
    return make_campaign()
