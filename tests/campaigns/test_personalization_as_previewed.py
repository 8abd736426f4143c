"""What a recipient receives is what the marketer previewed for them: names, address, every kind
of custom attribute, language and topics, in the subject, the HTML and the text part — through
a real SMTP server, the test send, and the sandbox."""

import re

import lxml.html
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns.models import SandboxMessage
from campaigns.pipeline import campaign_send_work
from campaigns.services import campaign_start
from subscribers.models import Subscriber, Subscription, Topic
from templates_app.fields import recipient_contexts
from tests.support.factories import (
    CampaignFactory,
    CustomFieldFactory,
    SendingConnectionFactory,
    SubscriberFactory,
    SubscriptionFactory,
    TemplateFactory,
    TopicFactory,
)
from tests.support.smtp import html_of, text_of

SUBJECT = '{{ first_name }}, {{ attr.company|default:"your company" }}\'s favourite shop'
HTML = """<html><body>
<h1>Hello {{ first_name }} {{ last_name|upper }}</h1>
<p>{{ attr.company|default:"your company" }}'s favourite shop</p>
<ul>
<li>Seats: {{ attr.seats|default:"?" }}</li>
<li>Score: {{ attr.score|default:"?" }}</li>
<li>Renewal: {{ attr.renewal|default:"?" }}</li>
<li>VIP: {{ attr.vip|capfirst|default:"?" }}</li>
<li>Churned: {{ attr.churned|default:"?" }}</li>
<li>Plan: {{ attr.plan|upper|default:"?" }}</li>
<li>Language: {{ language }}</li>
<li>Topics: {{ topics }}</li>
<li>Address: {{ email }}</li>
</ul>
<p><a href="https://shop.example/deals">Deals</a></p>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a> ·
<a href="{{ preferences_url }}">Preferences</a></p>
</body></html>"""
# What a subscriber of ACME must read, wherever the message comes from.
EXPECTED = [
    "Hello Ada LOVELACE-BYRON",
    "ACME's favourite shop",
    "Seats: 12",
    "Score: 4.5",
    "Renewal: 2027-05-01",
    "VIP: Yes",
    "Churned: no",
    "Plan: PRO",
    "Language: fr",
    "Topics: Product news, Weekly",
    "Address: ada@acme.example",
]


@pytest.fixture
def ada(editor_client):
    """A subscriber made the way a marketer makes one: the dashboard's subscriber form."""
    for key, kind, choices in [
        ("company", "text", []),
        ("seats", "number", []),
        ("score", "number", []),
        ("renewal", "date", []),
        ("vip", "boolean", []),
        ("churned", "boolean", []),
        ("plan", "choice", ["free", "pro"]),
    ]:
        CustomFieldFactory(key=key, label=key.title(), type=kind, choices=choices)
    weekly = TopicFactory(name="Weekly", slug="weekly")
    product = TopicFactory(name="Product", slug="product", public_name="Product news")
    TopicFactory(name="Other", slug="other")  # not theirs
    response = editor_client.post(
        reverse("subscribers:create"),
        {
            "email": "ada@acme.example",
            "first_name": "Ada",
            "last_name": "Lovelace-Byron",
            "language": "fr",
            "timezone": "Europe/London",
            "topics": [weekly.pk, product.pk],
            "attr_company": "ACME",
            "attr_seats": "12",
            "attr_score": "4,5",
            "attr_renewal": "2027-05-01",
            "attr_vip": "true",
            "attr_churned": "false",
            "attr_plan": "pro",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    subscriber = Subscriber.objects.get(email="ada@acme.example")
    assert subscriber.attributes == {
        "company": "ACME",
        "seats": 12,
        "score": 4.5,
        "renewal": "2027-05-01",
        "vip": True,
        "churned": False,
        "plan": "pro",
    }
    Subscriber.objects.filter(pk=subscriber.pk).update(status=Subscriber.Status.ACTIVE)
    return subscriber


@pytest.fixture
def campaign(ada):
    return CampaignFactory(
        topic=Topic.objects.get(slug="weekly"),
        template=TemplateFactory(html_body=HTML, subject=SUBJECT),
    )


def _preview(client, campaign, email) -> dict:
    """The template preview page for a subscriber, read as a person sees it."""
    url = reverse("templates_app:preview", args=[campaign.template_id])
    page = lxml.html.fromstring(client.get(url, {"email": email}).content.decode())
    return {
        "subject": page.get_element_by_id("preview-subject").text_content(),
        "html": page.xpath('//iframe[@title="Desktop preview"]')[0].get("srcdoc"),
        "text": page.get_element_by_id("tab-text").text_content(),
    }


_URL = re.compile(r"https?://[^\s\"'<>)\]]+")
_PIXEL = re.compile(r'<img src="[^"]*" width="1" height="1" alt="">')


def _normalise(part: str) -> str:
    """Only what legitimately differs: the links (tracked and signed when sent, plain and
    sample in the preview) and the open pixel; and line ends, which SMTP makes CRLF."""
    part = part.replace("\r\n", "\n")
    return _URL.sub("<URL>", _PIXEL.sub("", part)).strip()


def _assert_same(preview: dict, received: dict) -> None:
    for name in ("subject", "html", "text"):
        assert _normalise(received[name]) == _normalise(preview[name]), name
    assert received["subject"] == "Ada, ACME's favourite shop"
    for line in EXPECTED:
        assert line in received["text"], line
        assert line in received["html"], line


def test_the_sent_message_is_the_previewed_one_part_by_part(
    viewer_client, campaign, smtp_sink, ada
):
    campaign.connection = SendingConnectionFactory(sink=smtp_sink)
    campaign.save()
    preview = _preview(viewer_client, campaign, ada.email)
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "done"
    (message,) = smtp_sink.parsed()
    received = {"subject": message["Subject"], "html": html_of(message), "text": text_of(message)}
    # The links really are tracked and signed in what was sent (hence the normalising).
    assert "https://shop.example/deals" in preview["html"]
    assert "https://shop.example/deals" not in received["html"]
    _assert_same(preview, received)


def test_a_test_send_to_a_subscriber_is_the_previewed_message(
    editor_client, campaign, smtp_sink, ada
):
    campaign.connection = SendingConnectionFactory(sink=smtp_sink)
    campaign.save()
    preview = _preview(editor_client, campaign, ada.email)
    response = editor_client.post(
        reverse("campaigns:test_send", args=[campaign.pk]), {"addresses": ada.email}
    )
    assert response.status_code == 302
    (message,) = smtp_sink.parsed()
    subject = message["Subject"]
    assert subject.startswith("[TEST] ")
    received = {"subject": subject[7:], "html": html_of(message), "text": text_of(message)}
    _assert_same(preview, received)


def test_a_sandbox_campaign_captures_the_previewed_message(viewer_client, ada):
    campaign = CampaignFactory(
        topic=Topic.objects.get(slug="weekly"),
        template=TemplateFactory(html_body=HTML, subject=SUBJECT),
        test_mode=True,
    )
    preview = _preview(viewer_client, campaign, ada.email)
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "done"
    (captured,) = SandboxMessage.objects.filter(campaign=campaign)
    received = {"subject": captured.subject, "html": captured.html, "text": captured.text}
    _assert_same(preview, received)


def test_the_preflight_counts_empty_fields_the_way_messages_fill_them(editor_client, campaign):
    bob = SubscriberFactory(email="bob@example.org", status=Subscriber.Status.ACTIVE, language="")
    SubscriptionFactory(subscriber=bob, topic=Topic.objects.get(slug="weekly"))
    page = editor_client.get(reverse("campaigns:preflight", args=[campaign.pk])).content.decode()
    # language, topics and the names are recipient fields, not unknown ones ...
    assert "is not a field any recipient has" not in page
    # ... Bob has no language and no first name: each counted once, with his address.
    assert page.count("bob@example.org") >= 2
    assert "1 recipient would get an empty {{ language }}" in page
    assert "1 recipient would get an empty {{ first_name }}" in page
    assert "empty {{ topics }}" not in page  # he is subscribed to Weekly


def test_merge_values_for_many_subscribers_cost_the_same_few_queries_as_for_one(ada):
    weekly = Topic.objects.get(slug="weekly")
    # 60 rows: built by the factories, written in two INSERTs (60 creates are slow).
    many = Subscriber.objects.bulk_create(
        [
            SubscriberFactory.build(
                email=f"s{i}@example.org", attributes={"seats": i, "vip": i % 2 == 0}
            )
            for i in range(60)
        ]
    )
    Subscription.objects.bulk_create(
        [SubscriptionFactory.build(subscriber=sub, topic=weekly) for sub in many]
    )
    with CaptureQueriesContext(connection) as one:
        contexts = recipient_contexts([ada.pk])
    assert contexts[ada.pk]["attr"]["company"] == "ACME"
    with CaptureQueriesContext(connection) as sixty:
        contexts = recipient_contexts([s.pk for s in many])
    assert len(one) == len(sixty) == 3
    assert contexts[many[3].pk]["attr"] == {"seats": "3", "vip": "no"}
    assert contexts[many[3].pk]["topics"] == "Weekly"


def test_the_pipeline_reads_merge_values_once_per_batch_not_per_recipient(ada, smtp_sink):
    weekly = Topic.objects.get(slug="weekly")
    # 30 rows: built by the factories, written in two INSERTs (30 creates are slow).
    subs = Subscriber.objects.bulk_create(
        [
            SubscriberFactory.build(
                email=f"r{i}@example.org",
                first_name=f"R{i}",
                status=Subscriber.Status.ACTIVE,
                attributes={"company": f"Co {i}"},
            )
            for i in range(30)
        ]
    )
    Subscription.objects.bulk_create(
        [SubscriptionFactory.build(subscriber=sub, topic=weekly) for sub in subs]
    )
    campaign = CampaignFactory(
        topic=weekly,
        connection=SendingConnectionFactory(sink=smtp_sink),
        template=TemplateFactory(html_body=HTML, subject=SUBJECT),
    )
    campaign_start(campaign=campaign)
    with CaptureQueriesContext(connection) as queries:
        assert campaign_send_work(campaign_id=campaign.pk) == "done"
    sql = [q["sql"] for q in queries.captured_queries]
    assert sum('FROM "subscribers_customfield"' in s for s in sql) == 1
    assert sum('FROM "subscribers_subscription"' in s for s in sql) == 1
    subjects = sorted(m["Subject"] for m in smtp_sink.wait_for(31))
    assert "R7, Co 7's favourite shop" in subjects and "Ada, ACME's favourite shop" in subjects
