"""Signed delivery to a real receiver on loopback, retries with back-off, giving up, disabling
a failing endpoint with an alert, the log page and "send again"."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.models import ReputationAlert
from subscribers.services import subscriber_create
from webhooks.dispatch import BACKOFF_SECONDS, MAX_ATTEMPTS, dispatch_due
from webhooks.models import WebhookAttempt, WebhookMessage


def _due_now():
    """Time passes: every pending message is due (instead of waiting for its back-off)."""
    WebhookMessage.objects.filter(status="pending").update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_it_posts_each_event_signed_so_a_standard_webhooks_library_verifies_it(subscribe, receiver):
    subscribe("subscriber.created")
    subscriber = subscriber_create(email="ada@example.com", first_name="Ada")
    assert dispatch_due() == (1, False)
    [got] = receiver.received
    assert got.verified, got.headers
    assert got.payload["type"] == "subscriber.created"
    assert got.payload["data"]["subscriber_id"] == subscriber.pk
    assert got.payload["data"]["email"] == "ada@example.com"
    assert got.id.startswith("msg_")
    assert got.headers["webhook-signature"].startswith("v1,")
    message = WebhookMessage.objects.get()
    assert message.status == "delivered" and message.attempts == 1


def test_a_tampered_body_or_another_secret_does_not_verify(subscribe, receiver):
    """The receiver's check is real: the same POST fails with the wrong secret."""
    subscribe("subscriber.created")
    receiver.secrets = ["whsec_" + "A" * 32]
    subscriber_create(email="bob@example.com")
    dispatch_due()
    assert [r.verified for r in receiver.received] == [False]


def test_failures_are_retried_with_growing_delays_under_the_same_id(subscribe, receiver, client):
    endpoint = subscribe("subscriber.created")
    receiver.answers = [500, 503]
    subscriber_create(email="cy@example.com")
    before = timezone.now()
    dispatch_due()
    message = WebhookMessage.objects.get()
    assert (message.status, message.attempts, message.last_response_code) == ("pending", 1, 500)
    first_wait = (message.next_attempt_at - before).total_seconds()
    assert BACKOFF_SECONDS[0] - 1 <= first_wait <= BACKOFF_SECONDS[0] + 5
    assert dispatch_due() == (0, False)  # not due yet
    _due_now()
    before = timezone.now()
    dispatch_due()
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_response_code) == ("pending", 2, 503)
    second_wait = (message.next_attempt_at - before).total_seconds()
    assert BACKOFF_SECONDS[1] - 1 <= second_wait <= BACKOFF_SECONDS[1] + 5
    _due_now()
    dispatch_due()
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("delivered", 3)
    assert len({r.id for r in receiver.received}) == 1 and len(receiver.received) == 3
    assert all(r.verified for r in receiver.received)
    assert sum(BACKOFF_SECONDS) >= 23 * 3600  # retried for about a day

    page = client.get(f"/webhooks/{endpoint.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count(message.msg_id) >= 3
    assert ">500<" in html and ">503<" in html and ">200<" in html
    assert "&quot;status&quot;: 503" in html  # the start of the answer's body
    assert WebhookAttempt.objects.filter(endpoint=endpoint).count() == 3


def test_a_message_is_given_up_after_the_last_try_and_can_be_sent_again(
    subscribe, receiver, editor_client
):
    endpoint = subscribe("subscriber.created")
    receiver.answers = [500] * MAX_ATTEMPTS
    subscriber_create(email="dee@example.com")
    for _ in range(MAX_ATTEMPTS):
        _due_now()
        dispatch_due()
    message = WebhookMessage.objects.get()
    assert (message.status, message.attempts) == ("failed", MAX_ATTEMPTS)
    _due_now()
    assert dispatch_due() == (0, False)

    response = editor_client.post(f"/webhooks/messages/{message.pk}/resend/")
    assert response.status_code == 302
    dispatch_due()
    message.refresh_from_db()
    assert message.status == "delivered"
    assert len(receiver.received) == MAX_ATTEMPTS + 1
    assert receiver.received[-1].verified and receiver.received[-1].id == message.msg_id
    assert endpoint.consecutive_failures == 0


def test_send_again_is_a_post_for_editors_only(subscribe, receiver, client, viewer_user):
    subscribe("subscriber.created")
    subscriber_create(email="eve@example.com")
    dispatch_due()
    message = WebhookMessage.objects.get()
    client.force_login(viewer_user)
    assert client.post(f"/webhooks/messages/{message.pk}/resend/").status_code == 403
    client.force_login(message.endpoint.created_by)
    assert client.get(f"/webhooks/messages/{message.pk}/resend/").status_code == 405
    assert client.post("/webhooks/messages/999999/resend/").status_code == 404


def test_an_endpoint_failing_again_and_again_is_disabled_with_an_alert(
    subscribe, receiver, settings, editor_client
):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 4
    endpoint = subscribe("subscriber.created", "alert.raised")
    other = subscribe("alert.raised")  # a working endpoint hears about it
    receiver.answers = [500] * 4
    for i in range(4):
        subscriber_create(email=f"f{i}@example.com")
    dispatch_due()
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert "4 failed attempts" in endpoint.disabled_reason
    alert = ReputationAlert.objects.get(scope="webhook", key=str(endpoint.pk))
    assert endpoint.url in alert.message
    assert WebhookMessage.objects.filter(endpoint=other, event_type="alert.raised").exists()
    # Its messages wait (nothing is posted to a disabled endpoint) ...
    _due_now()
    dispatch_due()
    assert WebhookMessage.objects.filter(endpoint=endpoint, status="pending").count() == 4
    assert "Disabled" in editor_client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    assert alert.message in editor_client.get("/").content.decode()
    # ... and go out once it is enabled again, which resolves the alert.
    response = editor_client.post(
        f"/webhooks/{endpoint.pk}/edit/",
        {"url": endpoint.url, "event_types": ["subscriber.created"], "enabled": "on"},
    )
    assert response.status_code == 302
    dispatch_due()
    assert WebhookMessage.objects.filter(endpoint=endpoint, status="delivered").count() == 4
    alert.refresh_from_db()
    assert alert.resolved_at is not None


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # plain HTTP to the internet
        "ftp://example.com/hook",
        "https://user:pw@example.com/hook",
        "https://[::1/hook",
        "not a url",
    ],
)
def test_the_form_refuses_what_is_not_https_with_a_clear_error(editor_client, url):
    response = editor_client.post(
        "/webhooks/new/", {"url": url, "event_types": ["subscriber.created"]}
    )
    assert response.status_code == 200
    assert "is-invalid" in response.content.decode()


def test_plain_http_to_loopback_needs_the_setting(editor_client, settings):
    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = False
    response = editor_client.post(
        "/webhooks/new/",
        {"url": "http://127.0.0.1:9/hook", "event_types": ["subscriber.created"]},
    )
    assert "must use https://" in response.content.decode()


def test_viewers_read_but_do_not_create_or_see_secrets(subscribe, client, viewer_user):
    endpoint = subscribe("subscriber.created")
    client.force_login(viewer_user)
    assert client.post("/webhooks/new/", {"url": "https://example.com"}).status_code == 403
    page = client.get(f"/webhooks/{endpoint.pk}/")
    assert page.status_code == 200 and endpoint.secret not in page.content.decode()


def test_with_no_endpoint_emission_costs_no_query(db):
    subscriber_create(email="gil@example.com")  # warm the cached answer
    with CaptureQueriesContext(connection) as queries:
        subscriber_create(email="hal@example.com")
    assert not [q for q in queries if "webhook" in q["sql"]]
    assert not WebhookMessage.objects.exists()
