import datetime as dt

from django.utils import timezone

from subscribers.models import ConsentRecord, Subscriber, Subscription, Suppression
from tests.support.api import error_of
from tests.support.factories import (
    CustomFieldFactory,
    SegmentFactory,
    SubscriberFactory,
    SuppressionFactory,
    TopicFactory,
)


def test_create_then_get_a_subscriber_with_topics_and_typed_attributes(api):
    TopicFactory(slug="news")
    CustomFieldFactory(key="plan", type="choice", choices=["free", "pro"])
    CustomFieldFactory(key="seats", type="number")
    created = api.post(
        "/subscribers",
        {
            "email": "Ann@Example.COM",
            "first_name": "Ann",
            "attributes": {"plan": "pro", "seats": "12"},
            "topics": ["news"],
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["email"] == "ann@example.com" and body["status"] == "unconfirmed"
    assert body["attributes"] == {"plan": "pro", "seats": 12} and body["topics"] == ["news"]
    assert body["source"] == "api"
    fetched = api.get(f"/subscribers/{body['id']}")
    assert fetched.json() == body and fetched["ETag"]


def test_an_attribute_with_no_field_or_a_bad_value_names_the_field(api):
    CustomFieldFactory(key="seats", type="number")
    response = api.post("/subscribers", {"email": "a@example.com", "attributes": {"seats": "x"}})
    assert response.status_code == 422 and error_of(response)["field"] == "attributes.seats"
    response = api.post("/subscribers", {"email": "a@example.com", "attributes": {"nope": "1"}})
    assert response.status_code == 422 and error_of(response)["field"] == "attributes.nope"
    assert not Subscriber.objects.exists()


def test_active_needs_the_consent_they_gave_which_is_recorded(api):
    refused = api.post("/subscribers", {"email": "a@example.com", "status": "active"})
    assert refused.status_code == 422 and error_of(refused)["field"] == "consent"
    response = api.post(
        "/subscribers",
        {
            "email": "a@example.com",
            "status": "active",
            "consent": {"text": "Yes, send me news", "version": "3", "ip": "203.0.113.5"},
        },
    )
    assert response.status_code == 201 and response.json()["status"] == "active"
    record = ConsentRecord.objects.get()
    assert (record.where, record.text, record.version, record.ip) == (
        "api",
        "Yes, send me news",
        "3",
        "203.0.113.5",
    )


def test_a_suppressed_address_is_not_added_back(api):
    SuppressionFactory(hash_of="gone@example.com", reason=Suppression.Reason.ERASED)
    response = api.post("/subscribers", {"email": "Gone@example.com"})
    assert response.status_code == 409 and error_of(response)["code"] == "suppressed"
    upsert = api.post("/subscribers/upsert", {"email": "gone@example.com"})
    assert upsert.status_code == 409
    assert not Subscriber.objects.exists()


def test_upsert_creates_then_updates_by_address_keeping_what_is_not_sent(api):
    TopicFactory(slug="news")
    first = api.post("/subscribers/upsert", {"email": "a@example.com", "first_name": "Ann"})
    assert first.status_code == 201 and first.json()["created"] is True
    second = api.post(
        "/subscribers/upsert", {"email": "A@example.com", "last_name": "Lee", "topics": ["news"]}
    )
    assert second.status_code == 200 and second.json()["created"] is False
    subscriber = second.json()["subscriber"]
    assert (subscriber["first_name"], subscriber["last_name"]) == ("Ann", "Lee")
    assert subscriber["topics"] == ["news"]
    assert Subscriber.objects.count() == 1


def test_an_upsert_answers_the_subscriber_as_a_get_shows_them(api):
    TopicFactory(slug="news")
    TopicFactory(slug="offers")
    CustomFieldFactory(key="plan", type="text")
    CustomFieldFactory(key="seats", type="number")
    CustomFieldFactory(key="joined", type="date")
    first = api.post(
        "/subscribers/upsert",
        {"email": "Ann@Example.com", "first_name": "Ann", "topics": ["offers"]},
    )
    second = api.post(
        "/subscribers/upsert",
        {
            "email": "ann@example.com",
            "last_name": "Lee",
            "language": "fr",
            "attributes": {"plan": " pro ", "seats": "12", "joined": "2026-01-02"},
            "topics": ["news"],
        },
    )
    again = api.post("/subscribers/upsert", {"email": "ann@example.com", "first_name": "Ann"})
    assert (first.status_code, second.status_code, again.status_code) == (201, 200, 200)
    body = second.json()["subscriber"]
    assert body["id"] == first.json()["subscriber"]["id"]
    assert body["attributes"] == {"plan": "pro", "seats": 12, "joined": "2026-01-02"}
    assert body["topics"] == ["news", "offers"] and body["language"] == "fr"
    fetched = api.get(f"/subscribers/{body['id']}").json()
    assert body == fetched and again.json() == {"created": False, "subscriber": fetched}


def test_an_upsert_with_a_bad_attribute_or_an_unknown_topic_is_refused(api):
    CustomFieldFactory(key="seats", type="number")
    for body in (
        {"email": "a@example.com", "attributes": {"seats": "many"}},
        {"email": "a@example.com", "attributes": {"nope": "1"}},
        {"email": "a@example.com", "topics": ["nope"]},
        {"email": "not an address"},
    ):
        response = api.post("/subscribers/upsert", body)
        assert response.status_code == 422, body
    assert not Subscriber.objects.exists()


def test_a_patch_with_a_stale_etag_is_refused_with_412(api):
    subscriber = SubscriberFactory(first_name="Ann")
    etag = api.get(f"/subscribers/{subscriber.pk}")["ETag"]
    changed = api.patch(f"/subscribers/{subscriber.pk}", {"first_name": "Anna"}, HTTP_IF_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag
    stale = api.patch(f"/subscribers/{subscriber.pk}", {"first_name": "Annie"}, HTTP_IF_MATCH=etag)
    assert stale.status_code == 412 and error_of(stale)["field"] == "If-Match"
    assert Subscriber.objects.get().first_name == "Anna"


def test_patch_changes_topics_attributes_and_unsubscribes(api):
    news, events = TopicFactory(slug="news"), TopicFactory(slug="events")
    CustomFieldFactory(key="plan")
    subscriber = SubscriberFactory(active=True, topics=[news], attributes={"plan": "free"})
    response = api.patch(
        f"/subscribers/{subscriber.pk}",
        {"topics": {"add": ["events"], "remove": ["news"]}, "attributes": {"plan": None}},
    )
    assert response.status_code == 200, response.content
    assert response.json()["topics"] == ["events"] and response.json()["attributes"] == {}
    assert Subscription.objects.get(topic=news).status == "unsubscribed"
    gone = api.patch(f"/subscribers/{subscriber.pk}", {"status": "unsubscribed"})
    assert gone.json()["status"] == "unsubscribed" and gone.json()["topics"] == []
    assert Suppression.objects.filter(email=subscriber.email, reason="unsubscribed").exists()
    # Nobody who left is brought back by a backend.
    back = api.patch(f"/subscribers/{subscriber.pk}", {"status": "active"})
    assert back.status_code == 409 and error_of(back)["field"] == "status"
    assert events.pk  # still exists


def test_list_pages_by_keyset_and_filters(api):
    news = TopicFactory(slug="news")
    CustomFieldFactory(key="plan")
    people = [SubscriberFactory(active=True, topics=[news]) for _ in range(5)]
    SubscriberFactory(attributes={"plan": "pro"})
    seen, cursor = [], None
    while True:
        page = api.get(
            "/subscribers", {"topic": "news", "limit": 2, **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200
        seen += [row["id"] for row in page.json()["data"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [p.pk for p in people]
    pro = api.get("/subscribers", {"attribute": "plan", "attribute_value": "pro"}).json()["data"]
    assert [row["attributes"] for row in pro] == [{"plan": "pro"}]
    assert len(api.get("/subscribers", {"status": "unconfirmed"}).json()["data"]) == 1
    segment = SegmentFactory(
        rules={"match": "all", "conditions": [{"field": "topic", "op": "in", "value": ["news"]}]}
    )
    assert len(api.get("/subscribers", {"segment": segment.pk}).json()["data"]) == 5
    Subscriber.objects.filter(pk=people[0].pk).update(
        updated_at=timezone.now() + dt.timedelta(days=1)
    )
    since = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    assert [r["id"] for r in api.get("/subscribers", {"updated_since": since}).json()["data"]] == [
        people[0].pk
    ]
    bad = api.get("/subscribers", {"cursor": "abc"})
    assert bad.status_code == 422 and error_of(bad)["field"] == "cursor"


def test_delete_erase_and_export(api):
    subscriber = SubscriberFactory(first_name="Ann")
    export = api.get(f"/subscribers/{subscriber.pk}/export")
    assert export.status_code == 200 and export.json()["profile"]["first_name"] == "Ann"
    erased = api.post(f"/subscribers/{subscriber.pk}/erase")
    assert erased.status_code == 200 and erased.json()["erased"] is True
    row = Subscriber.objects.get()
    assert row.first_name == "" and row.email.endswith("@erased.invalid")
    assert Suppression.objects.filter(reason="erased").exists()
    other = SubscriberFactory()
    assert api.delete(f"/subscribers/{other.pk}").status_code == 204
    assert api.delete(f"/subscribers/{other.pk}").status_code == 404
    assert Subscriber.objects.count() == 1


def test_bulk_upsert_merges_in_one_call_and_reports_bad_rows(api):
    TopicFactory(slug="news")
    CustomFieldFactory(key="seats", type="number")
    SubscriberFactory(email="old@example.com", first_name="Old")
    SuppressionFactory(email="gone@example.com")
    rows = [{"email": f"p{i}@example.com", "attributes": {"seats": i}} for i in range(50)]
    rows += [
        {"email": "old@example.com", "last_name": "Timer"},
        {"email": "not-an-address"},
        {"email": "p1@example.com"},
        {"email": "gone@example.com"},
        {"email": "q@example.com", "attributes": {"seats": "many"}},
    ]
    response = api.post("/subscribers/bulk", {"subscribers": rows, "topics": ["news"]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["updated"], body["unchanged"], body["suppressed"]) == (
        50,
        1,
        0,
        1,
    )
    assert [(r["index"], r["email"]) for r in body["rejected"]] == [
        (51, "not-an-address"),
        (52, "p1@example.com"),
        (54, "q@example.com"),
    ]
    assert "duplicate of index 1" in body["rejected"][1]["reason"]
    old = Subscriber.objects.get(email="old@example.com")
    assert (old.first_name, old.last_name) == ("Old", "Timer")
    assert Subscription.objects.filter(topic__slug="news").count() == 51
    assert Subscriber.objects.get(email="p7@example.com").attributes == {"seats": 7}
    again = api.post("/subscribers/bulk", {"subscribers": rows[:50]}).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 50)


def test_bulk_upsert_takes_at_most_ten_thousand(api):
    rows = [{"email": f"p{i}@example.com"} for i in range(10_001)]
    response = api.post("/subscribers/bulk", {"subscribers": rows})
    assert response.status_code == 422 and error_of(response)["field"] == "subscribers"
    assert not Subscriber.objects.exists()
