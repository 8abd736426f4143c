"""A webhook receiver on loopback (http.server in a thread) that checks every POST as a
customer's endpoint would: with the standardwebhooks library and the endpoint's secret."""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Received:
    def __init__(self, headers: dict[str, str], body: bytes, verified: bool, payload):
        self.headers = headers
        self.body = body
        self.verified = verified
        self.payload = payload

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def type(self) -> str:
        return self.payload["type"] if self.payload else ""


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # a real server's backlog, not http.server's 5
    daemon_threads = True


class Receiver:
    """``url``; ``secrets`` (the endpoints' secrets: a POST verifies with one of them);
    ``answers``: status codes to answer in turn (then 200); ``received``: every POST."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.answers: list[int] = []
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint would

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                payload, verified = None, False
                for secret in receiver.secrets:
                    try:
                        payload = Webhook(secret).verify(body, headers)
                    except (WebhookVerificationError, ValueError):
                        continue
                    verified = True
                    break
                with receiver._lock:
                    receiver.received.append(Received(headers, body, verified, payload))
                    status = receiver.answers.pop(0) if receiver.answers else 200
                answer = json.dumps({"ok": status < 300, "status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.received if r.type == event_type]

    def wait_for(self, event_type: str, n: int = 1, timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of_type(event_type)
            if len(found) >= n:
                return found
            time.sleep(0.05)
        raise AssertionError(
            f"{n} {event_type} not received in {timeout}s; got {[r.type for r in self.received]}"
        )


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(
        target=receiver.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


# Fixtures (imported by the test modules and conftests that use them).


@pytest.fixture
def loopback_endpoints(settings):
    """Plain http:// to loopback allowed (the receiver), and no cached answers of another
    test's endpoints."""
    from webhooks.emit import KICK_KEY, WANTED_KEY

    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    cache.delete_many([WANTED_KEY, KICK_KEY])
    yield
    cache.delete_many([WANTED_KEY, KICK_KEY])


@pytest.fixture
def receiver(loopback_endpoints):
    with webhook_receiver() as r:
        yield r


@pytest.fixture
def subscribe(editor_client, receiver):
    """Subscribe the receiver to event types through the dashboard's form, as a marketer
    does; the receiver then verifies with the secret the page shows."""
    from webhooks.models import WebhookEndpoint

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
