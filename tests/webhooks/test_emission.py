"""Events are written by the code that writes the facts: a real campaign send, a real
tracking hit flushed from the buffer, a bounce ingested, a one-click unsubscribe, a signup
confirmed — then posted, signed, to a real receiver."""

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from analytics import buffer
from analytics.ingest import Fact, ingest_facts
from analytics.tracking import click_token, open_token
from api.keys import api_key_create
from campaigns.pipeline import campaign_send_work
from campaigns.services import campaign_start
from core.recipient_links import UNSUBSCRIBE, recipient_token
from tests.support.api import Api
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    SubscriberFactory,
    create_sent_campaign,
    make_audience,
)
from webhooks.dispatch import dispatch_due
from webhooks.models import WebhookMessage

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"


@pytest.fixture(autouse=True)
def _clean_tracking_buffer():
    r = buffer.client()
    if r is not None:
        r.delete(buffer.BUFFER_KEY, buffer.PROCESSING_KEY, buffer.LOCK_KEY)


def test_a_campaign_send_emits_one_delivery_sent_per_message_and_its_lifecycle(
    subscribe, receiver, smtp_sink
):
    subscribe("delivery.sent", "campaign.started", "campaign.finished")
    topic, _ = make_audience(5)
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "done"
    dispatch_due()
    sent = receiver.of_type("delivery.sent")
    assert len(sent) == 5 and all(r.verified for r in sent)
    assert len({r.id for r in sent}) == 5
    assert sorted(r.payload["data"]["email"] for r in sent) == sorted(smtp_sink.recipients())
    assert {r.payload["data"]["campaign_id"] for r in sent} == {campaign.pk}
    assert all(r.payload["data"]["message_id"].startswith("<d") for r in sent)
    assert [r.payload["data"]["status"] for r in receiver.of_type("campaign.started")] == [
        "running"
    ]
    assert len(receiver.of_type("campaign.finished")) == 1


def test_an_endpoint_not_subscribed_gets_nothing(subscribe, receiver, smtp_sink):
    subscribe("click.human")
    topic, _ = make_audience(3)
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    campaign_send_work(campaign_id=campaign.pk)
    assert not WebhookMessage.objects.exists()


def test_tracked_opens_and_clicks_flushed_from_the_buffer_become_webhooks(
    subscribe, receiver, client
):
    subscribe("open.human", "click.human")
    _campaign, links, deliveries = create_sent_campaign()
    assert client.get(f"/t/o/{open_token(deliveries[0].pk)}", HTTP_USER_AGENT=CHROME).status_code
    response = client.get(
        f"/t/c/{click_token(deliveries[1].pk, links[0].pk)}", HTTP_USER_AGENT=CHROME
    )
    assert response.status_code == 302
    assert buffer.flush() == 2
    buffer.flush()  # a second flush (nothing new) writes nothing twice
    dispatch_due()
    [opened] = receiver.of_type("open.human")
    [clicked] = receiver.of_type("click.human")
    assert opened.verified and clicked.verified
    assert opened.payload["data"]["delivery_id"] == deliveries[0].pk
    assert opened.payload["data"]["email"] == deliveries[0].email
    assert opened.payload["data"]["classification"] == "human"
    assert clicked.payload["data"]["url"] == links[0].url
    assert clicked.payload["data"]["link_id"] == links[0].pk


def test_machine_opens_go_only_to_endpoints_that_asked_for_them(subscribe, receiver, client):
    plain = subscribe("open.human")
    machines = subscribe("open.human", include_machine=True)
    _campaign, _links, deliveries = create_sent_campaign()
    # Apple's privacy proxy fetches the pixel: not a person.
    client.get(
        f"/t/o/{open_token(deliveries[0].pk)}",
        HTTP_USER_AGENT="Mozilla/5.0",
        REMOTE_ADDR="17.58.0.1",
    )
    client.get(f"/t/o/{open_token(deliveries[1].pk)}", HTTP_USER_AGENT=CHROME)
    buffer.flush()
    kinds = dict.fromkeys([plain.pk, machines.pk])
    for pk in kinds:
        kinds[pk] = sorted(
            WebhookMessage.objects.filter(endpoint_id=pk).values_list("event_type", flat=True)
        )
    assert kinds[plain.pk] == ["open.human"]
    assert kinds[machines.pk] == ["open.human", "open.machine"]


def test_bounces_and_complaints_from_ingestion_become_webhooks(subscribe, receiver):
    subscribe("delivery.bounced", "delivery.complained")
    _campaign, _links, deliveries = create_sent_campaign()
    now = timezone.now()
    facts = [
        Fact(
            uid="esp:b1",
            kind="bounced",
            occurred_at=now,
            delivery_id=deliveries[0].pk,
            esp="postmark",
            bounce_type="hard",
            reason="550 5.1.1 no such user",
        ),
        Fact(
            uid="esp:c1",
            kind="complained",
            occurred_at=now,
            delivery_id=deliveries[1].pk,
            esp="postmark",
        ),
    ]
    ingest_facts(facts)
    ingest_facts(facts)  # the ESP retried its webhook: still one event each
    dispatch_due()
    [bounced] = receiver.of_type("delivery.bounced")
    [complained] = receiver.of_type("delivery.complained")
    assert bounced.verified and complained.verified
    assert bounced.payload["data"]["bounce_type"] == "hard"
    assert "no such user" in bounced.payload["data"]["reason"]
    assert complained.payload["data"]["email"] == deliveries[1].email


def test_a_one_click_unsubscribe_emits_subscriber_unsubscribed(subscribe, receiver):
    subscribe("subscriber.unsubscribed")
    subscriber = SubscriberFactory(active=True, email="ada@example.com")
    token = recipient_token(UNSUBSCRIBE, subscriber_id=subscriber.pk)
    response = Client(enforce_csrf_checks=True).post(
        reverse("preferences:unsubscribe", args=[token]),
        data=urlencode({"List-Unsubscribe": "One-Click"}),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    dispatch_due()
    [got] = receiver.of_type("subscriber.unsubscribed")
    assert got.verified
    assert got.payload["data"]["email"] == "ada@example.com"
    assert got.payload["data"]["status"] == "unsubscribed"


def test_an_erasure_says_who_without_saying_anything_personal(subscribe, receiver, editor_client):
    from subscribers.services import subscriber_erase

    subscribe("subscriber.erased")
    subscriber = SubscriberFactory(active=True, email="gone@example.com", first_name="Gone")
    subscriber_erase(subscriber=subscriber)
    dispatch_due()
    [got] = receiver.of_type("subscriber.erased")
    assert got.payload["data"]["subscriber_id"] == subscriber.pk
    assert b"gone@example.com" not in got.body and b"Gone" not in got.body


def test_a_reputation_alert_emits_alert_raised(subscribe, receiver, settings):
    settings.REPUTATION_MIN_VOLUME = 100
    subscribe("alert.raised")
    _campaign, _links, deliveries = create_sent_campaign(n=200)
    now = timezone.now()
    ingest_facts(
        [
            Fact(uid=f"d{d.pk}", kind="delivered", occurred_at=now, delivery_id=d.pk, esp="x")
            for d in deliveries
        ]
    )
    ingest_facts(
        [
            Fact(uid=f"c{d.pk}", kind="complained", occurred_at=now, delivery_id=d.pk, esp="x")
            for d in deliveries[:2]
        ]
    )
    dispatch_due()
    raised = receiver.of_type("alert.raised")
    assert raised and all(r.verified for r in raised)
    assert {r.payload["data"]["metric"] for r in raised} == {"complaints"}


def test_api_upserts_emit_subscriber_created_and_updated_for_what_they_changed(subscribe, receiver):
    subscribe("subscriber.created", "subscriber.updated")
    api = Api(api_key_create(name="crm", scopes=["write"]).token)
    assert api.post("/subscribers/upsert", {"email": "ann@example.com"}).status_code == 201
    assert api.post("/subscribers/upsert", {"email": "ann@example.com"}).status_code == 200
    changed = api.post("/subscribers/upsert", {"email": "ann@example.com", "first_name": "Ann"})
    assert changed.status_code == 200
    bulk = api.post(
        "/subscribers/bulk",
        {"subscribers": [{"email": "bo@example.com"}, {"email": "ann@example.com"}]},
    )
    assert bulk.json()["created"] == 1 and bulk.json()["unchanged"] == 1
    dispatch_due()
    created = sorted(r.payload["data"]["email"] for r in receiver.of_type("subscriber.created"))
    assert created == ["ann@example.com", "bo@example.com"]
    [updated] = receiver.of_type("subscriber.updated")
    assert updated.verified and updated.payload["data"]["first_name"] == "Ann"
