import json

import pytest

from subscribers.models import ConsentRecord, Subscriber, Suppression, email_hash
from subscribers.services import (
    EXPORT_SECTIONS,
    consent_record,
    is_suppressed,
    subscriber_create,
    subscriber_erase,
    subscriber_export,
    suppression_lift,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def ann(topics, custom_fields):
    s = subscriber_create(
        email="ann@example.com",
        first_name="Ann",
        last_name="Lee",
        attributes={"company": "Acme", "score": 7},
        status="active",
        topics=topics[:2],
    )
    consent_record(
        subscriber=s, text="Yes please", version="v1", where="form", ip="198.51.100.7",
        user_agent="Safari",
    )  # fmt: skip
    return s


def test_the_export_holds_everything_and_is_json(ann, monkeypatch):
    monkeypatch.setitem(EXPORT_SECTIONS, "deliveries", lambda s: [{"campaign": "June"}])
    data = subscriber_export(subscriber=ann)
    text = json.dumps(data)
    assert data["profile"]["email"] == "ann@example.com"
    assert data["attributes"] == {"company": "Acme", "score": 7}
    assert {s["topic"] for s in data["subscriptions"]} == {"weekly", "product"}
    assert data["consent_records"][0]["ip"] == "198.51.100.7"
    assert data["deliveries"] == [{"campaign": "June"}]
    assert "Ann" in text


def test_erasure_leaves_nothing_personal_but_keeps_the_row_and_a_hash(ann):
    pk = ann.pk
    subscriber_erase(subscriber=ann)
    row = Subscriber.objects.get(pk=pk)  # deliveries and events can still point at it
    dump = json.dumps(subscriber_export(subscriber=row)).lower()
    for personal in ["ann@example.com", "ann", "lee", "acme", "198.51.100.7", "safari"]:
        assert personal not in dump.replace("erased-", "")
    assert row.status == Subscriber.Status.UNSUBSCRIBED and row.erased_at
    assert not ConsentRecord.objects.filter(subscriber_id=pk).exists()
    suppression = Suppression.objects.get(email_hash=email_hash("ann@example.com"))
    assert suppression.reason == "erased" and suppression.email == ""
    assert not Suppression.objects.filter(email__icontains="ann").exists()


def test_an_erased_address_stays_blocked_until_they_sign_up_again(ann):
    subscriber_erase(subscriber=ann)
    assert is_suppressed("ANN@example.com")
    assert suppression_lift(email="ann@example.com")
    assert not is_suppressed("ann@example.com")


def test_a_suppressed_or_erased_address_is_never_sendable_even_if_it_comes_back(ann):
    from subscribers.selectors import subscribers_sendable

    bob = subscriber_create(email="bob@example.com", status="active")
    assert set(subscribers_sendable()) == {ann, bob}
    subscriber_erase(subscriber=ann)
    # The same person is re-created by someone else (an API call, a manual add) ...
    again = subscriber_create(email="Ann@Example.com", status="active")
    assert set(subscribers_sendable()) == {bob}
    assert again not in subscribers_sendable()
    # ... and an import skips the address as suppressed.
    from django.core.files.base import ContentFile

    from subscribers.importing import import_job_create, import_run
    from subscribers.models import ImportJob

    again.delete()
    job = import_job_create(file=ContentFile(b"email\nann@example.com\n"), name="x.csv")
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
    job = import_run(job=job)
    assert (job.created, job.suppressed) == (0, 1)
