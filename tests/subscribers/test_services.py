import json

import pytest

from subscribers.emails import EmailError, email_normalize
from subscribers.models import (
    ConsentRecord,
    Subscriber,
    Subscription,
    Suppression,
    email_hash,
)
from subscribers.selectors import TIMELINE_SOURCES, subscriber_timeline
from subscribers.services import (
    consent_record,
    is_suppressed,
    subscriber_create,
    subscriber_unsubscribe,
    subscribers_bulk_delete,
    subscribers_bulk_suppress,
    subscribers_bulk_topic,
    suppression_add,
    topic_subscribe,
    topic_unsubscribe,
)

pytestmark = pytest.mark.django_db


def test_addresses_are_normalized_and_bad_ones_refused():
    assert email_normalize("  Ann.Lee@Example.COM ") == "ann.lee@example.com"
    assert email_normalize("zoé@exämple.com") == "zoé@exämple.com"
    for bad in ["", "plain", "a@b", "a..b@example.com", "x@site.test", "a@-x.com"]:
        with pytest.raises(EmailError):
            email_normalize(bad)


def test_the_same_address_in_another_case_is_a_duplicate(db):
    subscriber_create(email="ann@example.com")
    with pytest.raises(EmailError):
        subscriber_create(email="ANN@example.com")


def test_suppression_add_is_idempotent(db):
    first = suppression_add(email="x@example.com", reason="complaint", note="fbl")
    again = suppression_add(email="X@example.com", reason="manual")
    assert first.pk == again.pk and again.reason == "complaint"
    assert Suppression.objects.count() == 1
    assert is_suppressed("x@EXAMPLE.com")


def test_unsubscribe_stops_everything_and_suppresses(topics):
    s = subscriber_create(email="a@example.com", status="active", topics=topics[:2])
    subscriber_unsubscribe(subscriber=s, source="preferences")
    s.refresh_from_db()
    assert s.status == Subscriber.Status.UNSUBSCRIBED
    assert not s.subscriptions.filter(status="active").exists()
    assert Suppression.objects.get(email_hash=email_hash("a@example.com")).reason == "unsubscribed"


def test_topic_subscribe_and_unsubscribe_keep_one_row_with_times(topics):
    s = subscriber_create(email="a@example.com")
    topic_subscribe(subscriber=s, topic=topics[0])
    topic_unsubscribe(subscriber=s, topic=topics[0])
    sub = Subscription.objects.get(subscriber=s)
    assert sub.status == "unsubscribed" and sub.unsubscribed_at
    topic_subscribe(subscriber=s, topic=topics[0])
    sub.refresh_from_db()
    assert sub.status == "active" and sub.unsubscribed_at is None
    assert Subscription.objects.count() == 1


def test_consent_records_keep_the_exact_text_and_place(db):
    s = subscriber_create(email="a@example.com")
    consent_record(
        subscriber=s, text="Yes, send me news", version="v2", where="form", ip="203.0.113.9",
        user_agent="Firefox",
    )  # fmt: skip
    record = ConsentRecord.objects.get()
    assert (record.text, record.version, record.where, record.ip) == (
        "Yes, send me news",
        "v2",
        "form",
        "203.0.113.9",
    )
    with pytest.raises(ValueError):
        consent_record(subscriber=s, text="x", version="1", where="nowhere")


def test_bulk_actions_work_on_a_whole_selection(topics):
    for i in range(5):
        subscriber_create(email=f"u{i}@example.com")
    selection = Subscriber.objects.filter(email__in=["u1@example.com", "u2@example.com"])
    assert subscribers_bulk_topic(queryset=selection, topic=topics[0], add=True) == 2
    assert subscribers_bulk_topic(queryset=selection, topic=topics[0], add=True) == 0
    assert subscribers_bulk_topic(queryset=selection, topic=topics[0], add=False) == 2
    assert subscribers_bulk_suppress(queryset=selection) == 2
    assert is_suppressed("u1@example.com") and not is_suppressed("u3@example.com")
    assert subscribers_bulk_delete(queryset=selection) == 2
    assert Subscriber.objects.count() == 3


def test_the_timeline_includes_what_later_apps_register(topics, monkeypatch):
    s = subscriber_create(email="a@example.com", topics=[topics[0]])
    monkeypatch.setattr(
        "subscribers.selectors.TIMELINE_SOURCES",
        [*TIMELINE_SOURCES, lambda sub: [{"at": sub.created_at, "kind": "sent", "text": "Sent"}]],
    )
    kinds = [item["kind"] for item in subscriber_timeline(s)]
    assert {"joined", "subscribed", "sent"} <= set(kinds)
    json.dumps([{**i, "at": i["at"].isoformat()} for i in subscriber_timeline(s)])


def test_deleting_subscribers_takes_their_subscriptions_and_consent_with_them(topics):
    s = subscriber_create(email="a@example.com", topics=topics)
    consent_record(subscriber=s, text="yes", version="1", where="form")
    subscribers_bulk_delete(queryset=Subscriber.objects.filter(pk=s.pk))
    assert not Subscription.objects.exists() and not ConsentRecord.objects.exists()
    topics[0].delete()
    assert not Subscription.objects.filter(topic_id=topics[0].pk).exists()
