"""The subscriber list's total, its ticked rows and "all N matching", and a bulk delete that
says how many it deletes before it does."""

import re

import pytest
from django.db import connection
from django.urls import reverse

from campaigns.models import Delivery
from subscribers.models import Subscriber, Subscription
from subscribers.services import is_suppressed, subscriber_create
from tests.support.factories import (
    CampaignFactory,
    DeliveryFactory,
)

pytestmark = pytest.mark.django_db

LIST = reverse("subscribers:list")
BULK = reverse("subscribers:bulk")


@pytest.fixture
def crowd(topics):
    return [
        subscriber_create(
            email=f"p{i:03d}@example.com", status="active", topics=topics[: 1 + i % 2]
        )
        for i in range(60)
    ]


def _total(response) -> str:
    match = re.search(r'id="subscriber-total"[^>]*>(.*?)</p>', response.content.decode(), re.S)
    return " ".join(match.group(1).split()) if match else ""


def test_a_small_list_shows_its_exact_total(admin_client, crowd):
    assert _total(admin_client.get(LIST)) == "60 subscribers"
    assert _total(admin_client.get(LIST, {"q": "p001"})) == "1 subscriber matches these filters"


def test_a_large_list_shows_an_estimate_labelled_about(admin_client, crowd, settings):
    settings.SUBSCRIBER_EXACT_COUNT_LIMIT = 20
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE subscribers_subscriber")
    body = _total(admin_client.get(LIST))
    assert body.startswith("About 60 subscribers") and "estimated" in body
    # A filtered set past the bound is estimated by the planner, and never below the bound.
    body = _total(admin_client.get(LIST, {"status": "active"}))
    assert body.startswith("About ") and "match these filters" in body
    assert int(body.split()[1]) >= 21
    # Under the bound a filtered set is counted exactly.
    assert _total(admin_client.get(LIST, {"q": "p00"})) == "10 subscribers match these filters"


def test_rows_have_checkboxes_and_the_whole_set_can_be_chosen(admin_client, crowd):
    body = admin_client.get(LIST).content.decode()
    assert body.count('name="ids"') == 50
    assert "data-select-page" in body and "Select all 60 matching" in body
    assert '<option value="all">All 60 matching</option>' in body
    assert "onsubmit" not in body and "<script>" not in body


def test_a_bulk_action_applies_to_the_ticked_rows_only(admin_client, crowd, topics):
    events = topics[2]
    ticked = [crowd[3].pk, crowd[7].pk]
    admin_client.post(
        BULK, {"ids": ticked, "scope": "selected", "action": "topic_add", "target_topic": events.pk}
    )
    assert set(
        Subscription.objects.filter(topic=events).values_list("subscriber_id", flat=True)
    ) == set(ticked)


def test_nothing_ticked_and_not_all_chosen_does_nothing(admin_client, crowd, topics):
    response = admin_client.post(
        BULK, {"action": "topic_add", "target_topic": topics[2].pk}, follow=True
    )
    assert "Tick the subscribers" in response.content.decode()
    assert not Subscription.objects.filter(topic=topics[2]).exists()


def test_bulk_delete_states_how_many_and_deletes_only_when_confirmed(admin_client, crowd):
    response = admin_client.post(BULK, {"q": "p00", "scope": "all", "action": "delete"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "Delete 10 subscribers?" in body and "This deletes <strong>10</strong>" in body
    assert Subscriber.objects.count() == 60
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', body))
    assert fields["confirmed"] == "yes" and fields["q"] == "p00"
    # Someone matching the filters joins while the page is open: not swept in.
    late = subscriber_create(email="p00x@example.com")
    response = admin_client.post(BULK, fields, follow=True)
    assert "10 subscribers deleted." in response.content.decode()
    assert Subscriber.objects.count() == 51
    assert Subscriber.objects.filter(pk=late.pk).exists()


def test_bulk_delete_of_ticked_rows_confirms_their_number(admin_client, crowd):
    ids = [crowd[0].pk]
    response = admin_client.post(BULK, {"ids": ids, "action": "delete"})
    assert "Delete 1 subscriber?" in response.content.decode()
    admin_client.post(BULK, {"ids": ids, "action": "delete", "confirmed": "yes"})
    assert not Subscriber.objects.filter(pk=crowd[0].pk).exists()
    assert Subscriber.objects.count() == 59


def test_bulk_delete_by_topic_is_set_based_and_keeps_campaign_figures(
    admin_client, crowd, topics, django_assert_max_num_queries
):
    campaign = CampaignFactory(bare=True, name="Spring", subject="Hi", from_email="a@example.com")
    DeliveryFactory(campaign=campaign, subscriber=crowd[1])
    product = topics[1]  # every odd subscriber
    data = {"topic": product.slug, "scope": "all", "action": "delete", "confirmed": "yes"}
    with django_assert_max_num_queries(40):
        admin_client.post(BULK, data)
    assert Subscriber.objects.count() == 30
    assert not Subscription.objects.filter(topic=product).exists()
    delivery = Delivery.objects.get(campaign=campaign)
    assert delivery.subscriber_id is None and delivery.email == crowd[1].email


def test_bulk_suppress_is_confirmed_too(admin_client, crowd):
    response = admin_client.post(BULK, {"q": "p001", "scope": "all", "action": "suppress"})
    assert "Suppress 1 subscriber?" in response.content.decode()
    assert not is_suppressed("p001@example.com")


def test_the_bulk_url_opened_with_get_changes_nothing(admin_client, crowd):
    assert admin_client.get(BULK, {"scope": "all", "action": "delete"}).status_code == 405
    assert Subscriber.objects.count() == 60


def test_junk_ids_are_ignored(admin_client, crowd):
    response = admin_client.post(
        BULK, {"ids": ["x", "9" * 40, "-1"], "action": "delete", "confirmed": "yes"}, follow=True
    )
    assert response.status_code == 200 and Subscriber.objects.count() == 60
