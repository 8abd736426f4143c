"""A developer's first hour with the API, as ONE test (issue 17's "done when"): from the
interactive docs alone, get a key, sign a person up with double opt-in, send them a
transactional message, and receive the signed webhooks of the confirmation, the delivery, the
open and the click on their own endpoint.

Every step goes through the door its person uses: the admin's browser (chromium) for the
Settings and Webhooks pages, the developer's backend speaking HTTP with its key to the live
server, the recipient's browser for the confirmation link and the message. Behind them: a real
Celery worker over Redis (the default, webhooks and transactional queues), a real SMTP server
(the sink), and the customer's endpoint on loopback verifying every POST with the
``standardwebhooks`` library.
"""

import re
import time
from collections import defaultdict

import pytest
import requests
from django.core.cache import cache
from django.db import connections
from playwright.sync_api import expect

from analytics import buffer
from analytics.classification import SCANNER_CLICK_SECONDS
from analytics.tasks import tracking_flush
from campaigns.models import Delivery
from subscribers.models import Subscriber
from tests.support.factories import SignupFormFactory, TemplateFactory, TopicFactory
from tests.support.smtp import html_of, text_of
from tests.support.webhook_receiver import loopback_endpoints, receiver
from tests.support.workers import Worker, own_queues

__all__ = ["loopback_endpoints", "receiver"]

pytestmark = [pytest.mark.browser, pytest.mark.worker]

TIMEOUT = 20_000  # ms, for any one step to show its result
# A person reading their mail in Thunderbird (Playwright's own agent says "HeadlessChrome": a
# scanner's, never a human's).
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.4.0"
ORDER_URL = "https://shop.example.com/orders/A-1001"
ORDER_HTML = (
    '<p>Hi {{ first_name|default:"there" }}, your order {{ order_number }} is on its way.</p>'
    f'<p><a href="{ORDER_URL}">Follow your order</a></p>'
)
SIGNUP_FIELDS = ["email", "first_name", "consent"]
WANTED = ["subscriber.confirmed", "delivery.sent", "open.human", "click.human"]
# What the docs' front page must tell a newcomer, each as the docs word it.
THE_DOCS_SAY = {
    "how to get a key": ["Settings → API keys", "Authorization: Bearer"],
    "how to sign up with double opt-in": [
        "POST /api/v1/signups",
        "double opt-in",
        "pending_confirmation",
        "confirmation email",
    ],
    "how to send a message": ["POST /api/v1/messages", "GET /api/v1/templates", '"data"'],
    "how webhooks are signed": [
        "Webhooks → New endpoint",
        "Standard Webhooks",
        "webhook-signature",
        "HMAC-SHA256",
        "standardwebhooks",
        "de-duplicate on webhook-id",
    ],
}


@pytest.fixture
def stack(live_server, settings, transactional_db, smtp_sink, admin_user):
    """A worker of this test's own (its queues, mail to the sink, links to the live server)."""
    cache.clear()  # rate limits and confirmation windows of earlier runs live in Redis
    r = buffer.client()
    if r is not None:  # hits an earlier test left in the tracking buffer
        r.delete(buffer.BUFFER_KEY, buffer.PROCESSING_KEY, buffer.LOCK_KEY)
    settings.SITE_URL = live_server.url
    mail = {
        "SITE_URL": live_server.url,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_sink.port),
    }
    with own_queues("developer") as queues:
        worker = Worker(concurrency=2, queues=list(queues.values()), **queues, **mail)
        try:
            worker.wait_ready()
            yield worker
        finally:
            worker.stop()
            connections.close_all()


def _message_to(sink, address: str, subject: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in sink.parsed() if address in m["To"] and subject in m["Subject"]]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no “{subject}” to {address}: {[m['Subject'] for m in sink.parsed()]}")


def _received(receiver, worker, event_type: str, timeout: float = 30):
    try:
        return receiver.wait_for(event_type, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker.output()}") from None


def test_a_developers_first_hour(stack, chromium, live_server, smtp_sink, receiver):
    url = live_server.url
    worker = stack
    form = SignupFormFactory(
        name="Newsletter",
        topics=[TopicFactory(slug="news")],
        steps=[{"title": "", "fields": [{"kind": k, "required": True} for k in SIGNUP_FIELDS]}],
    )
    TemplateFactory(name="Order shipped", subject="Order {{ order_number }}", html_body=ORDER_HTML)

    # --- the admin: an API key in Settings, the endpoint in Webhooks ------------------------
    admin = chromium.new_context()
    admin.set_default_timeout(TIMEOUT)
    page = admin.new_page()
    page.goto(f"{url}/login/")
    page.get_by_label("Username").fill("alice-admin")
    page.get_by_label("Password").fill("pw-alice-admin")
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{url}/settings/")
    page.get_by_role("link", name="API keys").click()
    page.get_by_label(re.compile(r"^\s*Name\b")).fill("shop backend")
    page.get_by_label("Read", exact=True).uncheck()
    page.get_by_label("Write", exact=True).check()
    page.get_by_label(re.compile(r"^\s*Send\b")).check()
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_text("Copy this key now: it is shown only once.")).to_be_visible()
    token = page.get_by_label("New API key").input_value()
    assert token.startswith("nfm_")
    page.goto(page.url)  # shown once: the page, opened again, shows only its prefix
    expect(page.get_by_role("cell", name="shop backend")).to_be_visible()
    assert token not in page.content()

    page.goto(f"{url}/webhooks/")
    page.get_by_role("link", name="New endpoint").click()
    page.get_by_label(re.compile(r"^\s*Endpoint URL\b")).fill(receiver.url)
    for label in ["Subscriber confirmed", "Message sent", "Human open", "Human click"]:
        page.get_by_label(label, exact=True).check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Endpoint saved.")).to_be_visible()
    secret = page.locator("#secret").inner_text()
    assert secret.startswith("whsec_")
    receiver.secrets.append(secret)  # what the developer configures on their side

    # Where the docs send the developer for a form's public id: the form's embed code.
    page.goto(f"{url}/forms/{form.pk}/")
    snippet = page.locator("#embed-snippet").input_value()
    public_id = re.search(r'data-nofailmail-form="([^"]+)"', snippet).group(1)
    admin.close()

    # --- the developer reads the interactive docs -------------------------------------------
    developer = chromium.new_context()
    developer.set_default_timeout(TIMEOUT)
    docs = developer.new_page()
    docs.goto(f"{url}/api/v1/docs")
    expect(docs.locator(".opblock").first).to_be_visible()
    intro = docs.locator(".information-container").inner_text()
    for what, words in THE_DOCS_SAY.items():
        missing = [w for w in words if w not in intro]
        assert not missing, f"The docs do not say {what}: {missing} missing from\n{intro}"
    operations = docs.locator(".opblock-summary").all_inner_texts()
    for operation in ["POST\n/api/v1/signups", "POST\n/api/v1/messages", "GET\n/api/v1/templates"]:
        assert any(o.startswith(operation) for o in operations), operations
    developer.close()

    # --- the developer's backend signs a person up (double opt-in) -------------------------
    # One connection per request, closed by the server after its answer. (A kept-alive one
    # would keep the live server's thread, and its database connection, open past the test,
    # and the test database's drop fails. And a pooled connection after "Connection: close"
    # races the server's close: Django's server closes without saying so in the answer, so
    # the next request could go out on a socket being closed, "Remote end closed connection
    # without response".)
    key = {"Authorization": f"Bearer {token}", "Connection": "close"}

    def backend(method: str, path: str, *, headers=None, **kwargs) -> requests.Response:
        return requests.request(
            method, f"{url}{path}", headers={**key, **(headers or {})}, timeout=30, **kwargs
        )

    signed_up = backend(
        "POST",
        "/api/v1/signups",
        json={
            "form": public_id,
            "fields": {"email": "ann@example.com", "first_name": "Ann", "consent": True},
            "ip": "203.0.113.9",
        },
    )
    assert signed_up.status_code == 201, signed_up.text
    assert signed_up.json()["status"] == "pending_confirmation"
    assert Subscriber.objects.get(email="ann@example.com").status == "unconfirmed"

    # --- the person confirms from the email, in their browser -------------------------------
    confirmation = _message_to(smtp_sink, "ann@example.com", "Please confirm")
    link = re.search(r"https?://\S+/forms/c/[^\s/]+/", text_of(confirmation)).group(0)
    assert link.startswith(url)
    person = chromium.new_context(user_agent=THUNDERBIRD)
    person.set_default_timeout(TIMEOUT)
    inbox = person.new_page()
    inbox.goto(link)  # the page asks; the POST of its button confirms
    assert Subscriber.objects.get(email="ann@example.com").status == "unconfirmed"
    inbox.get_by_role("button", name="Yes, subscribe me").click()
    expect(inbox.get_by_text("You are subscribed")).to_be_visible()
    ann = Subscriber.objects.get(email="ann@example.com")
    assert ann.status == "active"

    # --- the backend sends a transactional message with data -------------------------------
    templates = backend("GET", "/api/v1/templates")
    assert templates.status_code == 200, templates.text
    (template_id,) = [t["id"] for t in templates.json() if t["name"] == "Order shipped"]
    sent = backend(
        "POST",
        "/api/v1/messages",
        json={"template": template_id, "to": "ann@example.com", "data": {"order_number": "A-1001"}},
        headers={"Idempotency-Key": "order-A-1001-shipped"},
    )
    assert sent.status_code == 201, sent.text
    delivery_id = sent.json()["id"]
    message = _message_to(smtp_sink, "ann@example.com", "Order A-1001")
    assert "Hi Ann, your order A-1001 is on its way." in text_of(message)

    # --- the person reads it: the pixel loads, then (later) a click -------------------------
    with inbox.expect_response(lambda r: "/t/o/" in r.url) as pixel:
        inbox.set_content(html_of(message))
    assert pixel.value.status == 200
    tracking_flush.delay()  # what beat has the worker do every TRACKING_FLUSH_SECONDS
    # Meanwhile the confirmation, the delivery and the open reach the endpoint.
    for event_type in WANTED[:3]:
        _received(receiver, worker, event_type)
    # Nobody reads and clicks within SCANNER_CLICK_SECONDS of the send: a click that early is
    # a link scanner's. The person reads first.
    sent_at = Delivery.objects.get(pk=delivery_id).sent_at.timestamp()
    time.sleep(max(0.0, sent_at + SCANNER_CLICK_SECONDS + 1 - time.time()))
    inbox.route(ORDER_URL, lambda route: route.fulfill(body="<title>Your order</title>"))
    inbox.get_by_role("link", name="Follow your order").click()
    inbox.wait_for_url(ORDER_URL)
    person.close()
    tracking_flush.delay()
    _received(receiver, worker, "click.human")

    # --- what the endpoint got: each event once (by webhook-id), each signature verified ----
    time.sleep(1)  # a duplicate posted late would show here
    by_type = defaultdict(dict)
    for hook in receiver.received:
        assert hook.verified, (hook.headers, hook.body)
        by_type[hook.type][hook.id] = hook.payload
    assert sorted(by_type) == sorted(WANTED), {t: len(ids) for t, ids in by_type.items()}
    assert all(len(ids) == 1 for ids in by_type.values()), by_type
    ((confirmed,),) = [list(by_type["subscriber.confirmed"].values())]
    ((delivered,),) = [list(by_type["delivery.sent"].values())]
    ((opened,),) = [list(by_type["open.human"].values())]
    ((clicked,),) = [list(by_type["click.human"].values())]
    assert confirmed["data"]["email"] == "ann@example.com"
    assert confirmed["data"]["subscriber_id"] == ann.pk
    assert confirmed["data"]["status"] == "active"
    assert delivered["data"]["delivery_id"] == delivery_id
    assert delivered["data"]["transactional"] is True
    assert delivered["data"]["message_id"] == message["Message-ID"]
    for tracked in (opened, clicked):
        assert tracked["data"]["delivery_id"] == delivery_id
        assert tracked["data"]["email"] == "ann@example.com"
        assert tracked["data"]["classification"] == "human"
    assert clicked["data"]["url"] == ORDER_URL
