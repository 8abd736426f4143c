"""POST /api/v1/messages over HTTP with a real API key: a transactional message, its
idempotency, the send scope, and clear errors."""

import json

import pytest

from campaigns.models import Delivery
from campaigns.transactional import transactional_deliver
from tests.support.factories import SendingConnectionFactory, TemplateFactory


@pytest.fixture
def api_client(make_api):
    sender, reader = make_api("send"), make_api("read")

    def post(body, *, key="send", idempotency_key=None):
        client = {"send": sender, "read": reader}.get(key)
        headers = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}
        raw = body if isinstance(body, str) else json.dumps(body)
        if client is None:  # an unknown key
            from django.test import Client

            return Client(HTTP_AUTHORIZATION="Bearer nfm_nope").post(
                "/api/v1/messages", raw, content_type="application/json", **headers
            )
        return client.client.post(
            "/api/v1/messages", raw, content_type="application/json", **headers
        )

    return post


@pytest.fixture
def template(db):
    return TemplateFactory(name="Reset", subject="Your code", html_body="<p>Code {{ code }}</p>")


def test_it_queues_a_message_and_a_replay_with_the_same_key_sends_nothing(
    api_client, template, smtp_sink
):
    SendingConnectionFactory(sink=smtp_sink)
    body = {
        "template": template.pk,
        "to": "ada@example.com",
        "data": {"code": "42"},
        "connection": "sink",
    }
    first = api_client(body, idempotency_key="reset-ada-1")
    assert first.status_code == 201, first.content
    sent = first.json()
    assert sent["status"] == "pending" and sent["created"] is True
    assert transactional_deliver(delivery_id=sent["id"]) == "sent"
    # A replayed request gets the first answer again (the API's Idempotency-Key records).
    again = api_client(body, idempotency_key="reset-ada-1")
    assert again.status_code == 201 and again.json() == sent
    # Past those records (another key, or after API_IDEMPOTENCY_HOURS) the message's own key
    # still holds: the same message, not a second one.
    from api.models import IdempotencyRecord

    IdempotencyRecord.objects.all().delete()
    later = api_client(body, idempotency_key="reset-ada-1")
    assert later.status_code == 200
    assert later.json()["id"] == sent["id"] and later.json()["created"] is False
    assert later.json()["status"] == "sent"
    assert Delivery.objects.count() == 1
    assert "Code 42" in smtp_sink.parsed()[0].as_string().replace("=\r\n", "")


def test_a_key_without_the_send_scope_is_refused(api_client, template):
    response = api_client({"template": template.pk, "to": "a@example.com"}, key="read")
    assert response.status_code == 403
    assert (
        api_client({"template": template.pk, "to": "a@example.com"}, key="nope").status_code == 401
    )
    assert not Delivery.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"template": 999999, "to": "a@example.com"}, 404, "template"),
        ({"template": "TEMPLATE", "to": "not an address"}, 400, "to"),
        ({"template": "TEMPLATE", "to": "a@example.com", "connection": "nope"}, 404, "connection"),
    ],
)
def test_bad_input_gets_a_clear_error_naming_the_field(api_client, template, body, status, field):
    body = {k: (template.pk if v == "TEMPLATE" else v) for k, v in body.items()}
    response = api_client(body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["field"] == field and error["message"]


@pytest.mark.parametrize(
    "raw", ["", "{", "[]", '{"template": "x", "to": 1}', '{"to": "a@example.com"}', "\x00"]
)
def test_malformed_bodies_never_get_a_500(api_client, template, raw):
    assert api_client(raw).status_code in (400, 422)


def test_it_answers_at_the_address_the_docs_give_like_every_collection(client):
    """POST /api/v1/messages, as the issue and the docs' front page say; it used to be only
    /api/v1/messages/ (a 404 for a developer following the docs)."""
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "post" in paths["/api/v1/messages"]
    assert [p for p in paths if p.endswith("/")] == []
