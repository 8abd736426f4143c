from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils.http import urlencode

from preferences.models import PreferenceCenterSettings
from subscribers.models import Subscriber, Suppression, email_hash


def _strict_client() -> Client:
    # No cookies at all, and CSRF enforced as in production: exactly what a mailbox provider has.
    return Client(enforce_csrf_checks=True)


def test_rfc8058_urlencoded_post_unsubscribes_at_once_with_200(subscriber, unsub_token):
    response = _strict_client().post(
        reverse("preferences:unsubscribe", args=[unsub_token]),
        data=urlencode({"List-Unsubscribe": "One-Click"}),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert "Location" not in response
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED
    assert Suppression.objects.filter(email_hash=email_hash(subscriber.email)).exists()


def test_rfc8058_multipart_post_works_too(subscriber, unsub_token):
    response = _strict_client().post(
        reverse("preferences:unsubscribe", args=[unsub_token]),
        {"List-Unsubscribe": "One-Click"},  # the test client sends multipart by default
    )
    assert response.status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED


def test_a_replayed_one_click_post_is_harmless(subscriber, unsub_token):
    url = reverse("preferences:unsubscribe", args=[unsub_token])
    for _ in range(3):
        assert _strict_client().post(url, {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert Suppression.objects.filter(email_hash=email_hash(subscriber.email)).count() == 1


def test_a_get_to_the_one_click_url_changes_nothing(subscriber, unsub_token):
    response = _strict_client().get(reverse("preferences:unsubscribe", args=[unsub_token]))
    assert response.status_code == 200
    assert b"Unsubscribe" in response.content
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert not Suppression.objects.exists()


def test_a_tampered_one_click_token_changes_nothing(subscriber, unsub_token):
    response = _strict_client().post(
        reverse("preferences:unsubscribe", args=[unsub_token + "x"]),
        {"List-Unsubscribe": "One-Click"},
    )
    assert response.status_code == 400
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE


def test_nothing_more_is_sent_after_leaving_by_default(subscriber, unsub_token):
    _strict_client().post(
        reverse("preferences:unsubscribe", args=[unsub_token]), {"List-Unsubscribe": "One-Click"}
    )
    assert mail.outbox == []


def test_one_goodbye_when_the_marketer_enabled_it(
    subscriber, unsub_token, django_capture_on_commit_callbacks
):
    leaving = PreferenceCenterSettings.load()
    leaving.send_goodbye_email = True
    leaving.save()
    url = reverse("preferences:unsubscribe", args=[unsub_token])
    with django_capture_on_commit_callbacks(execute=True):
        _strict_client().post(url, {"List-Unsubscribe": "One-Click"})
        _strict_client().post(url, {"List-Unsubscribe": "One-Click"})
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ada@example.com"]
