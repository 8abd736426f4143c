"""Every page answers with a Content-Security-Policy, and no page needs what it forbids:
inline scripts carry the request's nonce, no element has an inline event handler."""

import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.urls import get_resolver, reverse

from core.recipient_links import UNSUBSCRIBE, preferences_path, recipient_token
from nofailmail.celery import app as celery_app
from subscribers.services import subscriber_create
from tests.core.test_nul_bytes import _plain_urls
from tests.support.factories import (
    SegmentFactory,
    SignupFormFactory,
    TopicFactory,
    create_sent_campaign,
)
from tests.support.signup import post_step

pytestmark = pytest.mark.django_db

SCRIPT = re.compile(r"<script\b([^>]*)>", re.I)
HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)


def _directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())


def _check(url, response):
    assert response.status_code == 200, url
    directives = _directives(response)
    assert "'unsafe-inline'" not in directives["script-src"], url
    assert "'unsafe-eval'" not in directives["script-src"], url
    assert directives["object-src"] == "'none'"
    nonce = re.search(r"'nonce-([^']+)'", directives["script-src"])
    html = response.content.decode()
    for attrs in SCRIPT.findall(html):
        if "src=" in attrs or 'type="application/json"' in attrs:
            continue
        assert nonce and f'nonce="{nonce.group(1)}"' in attrs, (url, attrs)
    assert not HANDLER.search(html), (url, HANDLER.search(html).group(0))


def test_every_dashboard_page_has_the_policy_and_nothing_it_forbids(admin_client):
    topic = TopicFactory(name="Weekly", slug="weekly")
    subscriber_create(email="ann@example.com", status="active", topics=[topic])
    segment = SegmentFactory(name="All", rules={"match": "all", "conditions": []})
    checked = 0
    for name in _plain_urls(get_resolver()):
        url = reverse(name)
        if url.startswith(("/anymail/", "/t/", "/healthz", "/logout")):
            continue
        response = admin_client.get(url)
        if response.status_code in (302, 405) or not response["Content-Type"].startswith(
            "text/html"
        ):
            continue
        _check(url, response)
        checked += 1
    assert checked > 15
    _check("segment", admin_client.get(reverse("subscribers:segment_edit", args=[segment.pk])))


def test_public_pages_have_the_policy_and_frames_keep_their_ancestors(client):
    form = SignupFormFactory(
        name="Newsletter",
        steps=[{"title": "", "fields": [{"kind": "email", "required": True}]}],
        allowed_origins="https://shop.example",
    )
    _check("login", client.get(reverse("login")))
    page = client.get(reverse("signup:page", args=[form.public_id]))
    _check("hosted", page)
    assert _directives(page)["frame-ancestors"] == "'none'"
    frame = client.get(reverse("signup:frame", args=[form.public_id]))
    _check("frame", frame)
    assert _directives(frame)["frame-ancestors"] == "'self' https://shop.example"


def test_every_page_a_visitor_or_recipient_opens_has_the_policy(
    client, django_capture_on_commit_callbacks
):
    """The pages reached from an email or a signup, not only the hosted form: the opt-in
    confirmation (asked, then done), the preference center, the unsubscribe page and its exit
    survey, and the error pages they can land on."""
    cache.clear()  # rate limits and confirmation windows of earlier runs live in Redis
    form = SignupFormFactory(
        name="Newsletter", steps=[{"title": "", "fields": [{"kind": "email", "required": True}]}]
    )
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            post_step(client, form, email="vic@example.org")
    finally:
        celery_app.conf.task_always_eager = False
    (confirmation,) = mail.outbox
    confirm = "/" + re.search(r"https?://\S+?/(forms/c/[^\s/]+/)", confirmation.body).group(1)
    _check("confirm (asked)", client.get(confirm))
    _check("confirm (done)", client.post(confirm))

    delivery = create_sent_campaign(n=1)[2][0]
    ids = {"subscriber_id": delivery.subscriber_id, "delivery_id": delivery.pk}
    leave = recipient_token(UNSUBSCRIBE, **ids)
    _check("preferences", client.get(preferences_path(**ids)))
    _check("unsubscribe", client.get(reverse("preferences:unsubscribe", args=[leave])))
    _check("survey", client.get(reverse("preferences:survey", args=[leave])))
    _check("done", client.get(reverse("preferences:done", args=[leave])))
    for url, status in [("/u/not-a-token/", 404), (reverse("preferences:stay", args=[leave]), 405)]:
        response = client.get(url)
        assert response.status_code == status, url
        assert "script-src" in _directives(response), url
