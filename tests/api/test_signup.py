import re

from django.core import mail

from signup.models import Signup
from subscribers.models import ConsentRecord, Subscriber, Subscription
from tests.support.api import error_of
from tests.support.factories import SignupFormFactory, TopicFactory


def test_a_backend_signs_a_person_up_with_the_forms_double_opt_in(
    api, client, eager, django_capture_on_commit_callbacks
):
    topic = TopicFactory(slug="weekly")
    form = SignupFormFactory(
        topics=[topic], consent_text="Send me the weekly letter.", consent_version="7"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/signups",
            {
                "form": form.public_id,
                "fields": {"email": "Ada@Example.com", "consent": True},
                "ip": "203.0.113.9",
            },
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending_confirmation" and body["confirmation_sent"] is True
    subscriber = Subscriber.objects.get()
    assert subscriber.status == "unconfirmed" and not Subscription.objects.exists()
    assert not ConsentRecord.objects.exists()
    # The person confirms through the link in the email, as with the form.
    (message,) = mail.outbox
    assert message.to == ["ada@example.com"]
    link = re.search(r"https?://[^\s\"]+/forms/c/[^\s\"/]+/", message.body).group(0)
    path = link.split("://", 1)[1].split("/", 1)[1]
    assert client.post("/" + path).status_code in (200, 302)
    subscriber.refresh_from_db()
    assert subscriber.status == "active"
    assert Subscription.objects.get().topic == topic
    record = ConsentRecord.objects.get()
    # The consent is the confirmation's: its text and version, the confirming click's address.
    assert (record.text, record.version, record.where) == (
        "Send me the weekly letter.",
        "7",
        "form",
    )
    assert Signup.objects.get().ip == "203.0.113.9"


def test_the_forms_checks_apply(api):
    form = SignupFormFactory()
    missing = api.post("/signups", {"form": form.public_id, "fields": {"email": "a@example.com"}})
    assert missing.status_code == 422 and error_of(missing)["field"] == "fields.consent"
    bad = api.post(
        "/signups", {"form": form.public_id, "fields": {"email": "nope", "consent": True}}
    )
    assert bad.status_code == 422 and error_of(bad)["field"] == "fields.email"
    unknown = api.post("/signups", {"form": "nope", "fields": {}})
    assert unknown.status_code == 404
    assert not Subscriber.objects.exists()


def test_the_forms_rate_limits_apply(api, settings, eager):
    settings.SIGNUP_RATE_PER_ADDRESS = 2
    form = SignupFormFactory()
    body = {"form": form.public_id, "fields": {"email": "a@example.com", "consent": "1"}}
    assert [api.post("/signups", body).status_code for _ in range(3)] == [201, 201, 429]
    settings.SIGNUP_RATE_PER_IP = 1
    other = {
        "form": form.public_id,
        "fields": {"email": "b@example.com", "consent": "1"},
        "ip": "198.51.100.1",
    }
    third = {**other, "fields": {"email": "c@example.com", "consent": "1"}}
    assert api.post("/signups", other).status_code == 201
    limited = api.post("/signups", third)
    assert limited.status_code == 429 and limited["Retry-After"]
