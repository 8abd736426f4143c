"""POST /api/v1/messages over HTTP (the router in api/messages.py behind a stand-in of the
API's key contract: tests/support/api_stub.py)."""

import json

import pytest

from campaigns.models import Delivery
from campaigns.transactional import transactional_deliver
from tests.support.factories import SendingConnectionFactory, TemplateFactory


@pytest.fixture
def api_client(client, settings):
    settings.ROOT_URLCONF = "tests.support.api_stub"

    def post(body, *, key="send-key", idempotency_key=None):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
        if idempotency_key:
            headers["HTTP_IDEMPOTENCY_KEY"] = idempotency_key
        raw = body if isinstance(body, str) else json.dumps(body)
        return client.post("/api/v1/messages/", raw, content_type="application/json", **headers)

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
    again = api_client(body, idempotency_key="reset-ada-1")
    assert again.status_code == 200
    assert again.json()["id"] == sent["id"] and again.json()["created"] is False
    assert again.json()["status"] == "sent"
    assert Delivery.objects.count() == 1
    assert "Code 42" in smtp_sink.parsed()[0].as_string().replace("=\r\n", "")


def test_a_key_without_the_send_scope_is_refused(api_client, template):
    response = api_client({"template": template.pk, "to": "a@example.com"}, key="read-key")
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
    assert response.json()["field"] == field and response.json()["message"]


@pytest.mark.parametrize(
    "raw", ["", "{", "[]", '{"template": "x", "to": 1}', '{"to": "a@example.com"}', "\x00"]
)
def test_malformed_bodies_never_get_a_500(api_client, template, raw):
    assert api_client(raw).status_code in (400, 422)
