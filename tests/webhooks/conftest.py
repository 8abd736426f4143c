import pytest
from django.core.cache import cache

from tests.support.webhook_receiver import webhook_receiver
from webhooks.emit import KICK_KEY, WANTED_KEY
from webhooks.models import WebhookEndpoint


@pytest.fixture(autouse=True)
def _loopback_endpoints(settings):
    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    cache.delete_many([WANTED_KEY, KICK_KEY])
    yield
    cache.delete_many([WANTED_KEY, KICK_KEY])


@pytest.fixture
def receiver():
    with webhook_receiver() as r:
        yield r


@pytest.fixture
def subscribe(editor_client, receiver):
    """Subscribe the receiver to event types through the dashboard's form, as a marketer
    does; the receiver then verifies with the secret the page shows."""

    def make(*event_types: str, include_machine: bool = False) -> WebhookEndpoint:
        data = {"url": receiver.url, "event_types": list(event_types), "enabled": "on"}
        if include_machine:
            data["include_machine"] = "on"
        response = editor_client.post("/webhooks/new/", data)
        assert response.status_code == 302, response.content.decode()[:2000]
        endpoint = WebhookEndpoint.objects.latest("pk")
        page = editor_client.get(response["Location"]).content.decode()
        assert endpoint.secret in page
        receiver.secrets.append(endpoint.secret)
        return endpoint

    return make
