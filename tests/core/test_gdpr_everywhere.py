"""GDPR export, erasure and the activity timeline across every app: each app registers its hooks
in its AppConfig.ready(), and one person's data spread over all of them is exported, shown and
erased as a whole."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from analytics.ingest import Fact, ingest_facts
from analytics.models import CampaignStats, Event
from analytics.services import events_reclassify
from campaigns.gdpr import deliveries_timeline
from campaigns.models import Campaign, Delivery, SandboxMessage
from campaigns.pipeline import Lease, claim_batch
from campaigns.transactional import send_transactional
from preferences.models import ExitSurveyResponse
from signup.models import Signup, SignupForm
from subscribers.models import ImportRejection, Subscriber, email_hash
from subscribers.selectors import subscriber_timeline
from subscribers.services import subscriber_erase, subscriber_export
from templates_app.models import SentReply, Template
from tests.support.factories import (
    CampaignFactory,
    DeliveryFactory,
    ExitSurveyReasonFactory,
    ExitSurveyResponseFactory,
    ImportJobFactory,
    ImportRejectionFactory,
    LinkFactory,
    SandboxMessageFactory,
    SentReplyFactory,
    SignupFactory,
    SignupFormFactory,
    SubscriberFactory,
    TemplateFactory,
    TemplateVersionFactory,
)

pytestmark = pytest.mark.django_db

ADDRESS = "ann.lee@example.com"
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
HUMAN_IP = "198.51.100.23"
# How Ann shows up in her data, as whole pieces (a bare "ann" would also match field names).
PERSONAL = [
    ADDRESS, "ann.lee", '"ann"', "hi ann", "ann's", "ann lee", "#ann", "ann,lee", "lee,acme",
    HUMAN_IP, "192.0.2.44", "chrome/126", "firefox-of-ann",
]  # fmt: skip


def _campaign(name: str) -> Campaign:
    return CampaignFactory(bare=True, name=name, status=Campaign.Status.FINISHED)


@pytest.fixture
def ann(settings, tmp_path):
    """One person with data in every app, through the apps' own ingestion where it matters."""
    settings.MEDIA_ROOT = tmp_path
    now = timezone.now()
    ann = SubscriberFactory(
        email=ADDRESS, first_name="Ann", last_name="Lee", status=Subscriber.Status.ACTIVE
    )
    june = _campaign("June news")
    link = LinkFactory(campaign=june, index=0, url="https://shop.example.org/sale")
    sent = DeliveryFactory(
        campaign=june,
        subscriber=ann,
        status=Delivery.Status.SENT,
        sent_at=now - timedelta(hours=3),
        message_id="<june-1@news.example.com>",
    )
    failed = DeliveryFactory(
        campaign=_campaign("May news"),
        subscriber=ann,
        status=Delivery.Status.FAILED,
        error=f"550 5.1.1 <{ADDRESS.upper()}>: mailbox full",
    )
    SandboxMessageFactory(
        campaign=june, delivery=sent, to=ADDRESS, subject="June", raw=f"To: {ADDRESS}\r\n\r\nHi Ann"
    )
    SandboxMessageFactory(
        campaign=june, to=f"Ann Lee <{ADDRESS}>", subject="[TEST] June", raw="Hi Ann",
        is_test_send=True,
    )  # fmt: skip
    ingest_facts(
        [
            Fact(uid="open-human", kind="opened", occurred_at=now - timedelta(hours=2),
                 delivery_id=sent.pk, ip=HUMAN_IP, user_agent=CHROME, method="GET"),
            Fact(uid="open-proxy", kind="opened", occurred_at=now - timedelta(hours=2, minutes=50),
                 delivery_id=sent.pk, ip="17.58.0.1", user_agent="Mozilla/5.0", method="GET"),
            Fact(uid="click-scanner", kind="clicked",
                 occurred_at=now - timedelta(hours=2, minutes=55),
                 delivery_id=sent.pk, link_id=link.pk, ip="192.0.2.99",
                 user_agent="python-requests/2.31", method="GET"),
            Fact(uid="click-human", kind="clicked", occurred_at=now - timedelta(hours=1),
                 delivery_id=sent.pk, link_id=link.pk, ip=HUMAN_IP, user_agent=CHROME,
                 method="GET"),
            Fact(uid="complaint", kind="complained", occurred_at=now - timedelta(minutes=30),
                 delivery_id=sent.pk, esp="test", recipient=ADDRESS,
                 payload={"recipient": ADDRESS, "name": "Ann Lee"}),
        ]
    )  # fmt: skip
    ingest_facts(
        [
            Fact(uid="bounce", kind="bounced", occurred_at=now - timedelta(minutes=20),
                 delivery_id=failed.pk, esp="test", bounce_type="hard", recipient=ADDRESS,
                 reason=f"550 5.1.1 <{ADDRESS}>: user unknown", payload={"to": ADDRESS}),
        ]
    )  # fmt: skip
    job = ImportJobFactory(file="imports/people.csv", original_name="people.csv")
    ImportRejectionFactory(
        job=job, line=4, reason=f"duplicate of {ADDRESS}", raw=f"{ADDRESS},Ann,Lee,Acme"
    )
    ImportRejectionFactory(job=job, line=5, reason="invalid", raw="bob@,Bob,Stone")
    template = TemplateFactory(
        kind=Template.Kind.CANNED_REPLY,
        name="Answer",
        subject="Re: {{ topic }}",
        html_body="x",
        current_version=0,
    )
    version = TemplateVersionFactory(
        template=template, number=1, subject="Re: {{ topic }}", html_body="Hi {{ first_name }}"
    )
    SentReplyFactory(
        subscriber=ann, to_email=ADDRESS, template=template, version=version,
        subject="Re: Ann's export", text="Hi Ann, here it is.", html="<p>Hi Ann</p>",
        fields={"topic": "Ann's export"},
    )  # fmt: skip
    form = SignupFormFactory(name="Blog footer", steps=[])
    SignupFactory(
        form=form, subscriber=ann, confirmed_at=now - timedelta(days=9),
        source_page=f"https://blog.example.org/post?email={ADDRESS}#ann",
        utm_source="blog", utm_campaign="spring", ip="192.0.2.44",
        user_agent="Firefox-of-Ann/128", pending={"first_name": "Ann"},
    )  # fmt: skip
    ExitSurveyReasonFactory(key="too-many", label_en="Too many emails", label_fr="Trop")
    ExitSurveyResponseFactory(
        subscriber=ann, campaign=june, reasons=["too-many"], other_text="Ann Lee says bye"
    )
    ann.refresh_from_db()
    return ann


def test_the_export_gathers_what_every_app_holds_as_json(ann):
    data = json.loads(json.dumps(subscriber_export(subscriber=ann)))

    assert {d["campaign"]: d["status"] for d in data["deliveries"]} == {
        "June news": "sent",
        "May news": "failed",
    }
    june = next(d for d in data["deliveries"] if d["campaign"] == "June news")
    assert june["message_id"] == "<june-1@news.example.com>" and june["sent_at"]
    events = {e["kind"] + "/" + (e["classification"] or "-") for e in data["events"]}
    assert events == {
        "opened/Human",
        "opened/Privacy proxy",
        "clicked/Security scanner",
        "clicked/Human",
        "complained/-",
        "bounced/-",
    }
    human_open = next(
        e for e in data["events"] if e["kind"] == "opened" and e["classification"] == "Human"
    )
    assert (human_open["ip"], human_open["user_agent"]) == (HUMAN_IP, CHROME)
    assert {e["link_url"] for e in data["events"] if e["kind"] == "clicked"} == {
        "https://shop.example.org/sale"
    }
    assert data["engagement"]["human_opens"] == 1 and data["engagement"]["human_clicks"] == 1
    assert data["sent_replies"] == [
        {
            "subject": "Re: Ann's export",
            "sent_at": data["sent_replies"][0]["sent_at"],
            "to": ADDRESS,
        }
    ]
    [signup] = data["signups"]
    assert (signup["form"], signup["utm_source"], signup["ip"]) == (
        "Blog footer",
        "blog",
        "192.0.2.44",
    )
    assert signup["user_agent"] == "Firefox-of-Ann/128" and signup["confirmed_at"]
    assert data["exit_survey"][0]["reasons"] == ["Too many emails"]
    assert data["exit_survey"][0]["other_text"] == "Ann Lee says bye"


def test_the_timeline_shows_every_app_and_says_which_hits_were_machines(ann, viewer_client):
    timeline = subscriber_timeline(ann)
    texts = {item["kind"]: [] for item in timeline}
    for item in timeline:
        texts[item["kind"]].append(item["text"])

    assert texts["delivery_sent"] == ["Sent: campaign “June news”"]
    assert texts["delivery_failed"][0].startswith("Could not send: campaign “May news” (550")
    opens = texts["opened"]
    assert "Opened “June news”" in opens
    assert any("privacy proxy" in t and "not counted as human" in t for t in opens)
    clicks = texts["clicked"]
    assert "Clicked https://shop.example.org/sale in “June news”" in clicks
    assert any("security scanner" in t for t in clicks)
    assert texts["bounced"][0].startswith("Bounced (hard) “May news”: 550 5.1.1")
    assert texts["complained"] == ["Marked “June news” as spam"]
    assert texts["canned_reply"] == ["Canned reply sent: “Re: Ann's export”"]
    assert texts["signup"][0].startswith("Signed up through form “Blog footer” on https://blog")
    assert texts["signup_confirmed"] == ["Confirmed the signup through form “Blog footer”"]
    assert texts["exit_survey"] == [
        "Answered the exit survey: Too many emails; “Ann Lee says bye” (after “June news”)"
    ]
    assert [i["at"] for i in timeline] == sorted((i["at"] for i in timeline), reverse=True)

    page = viewer_client.get(reverse("subscribers:detail", args=[ann.pk])).content.decode()
    assert reverse("analytics:subscriber-timeline", args=[ann.pk]) in page
    assert 'data-kind="complained"' in page and "Marked “June news” as spam" in page
    assert "Canned reply sent: “Re: Ann&#x27;s export”" in page


def test_erasure_leaves_nothing_personal_in_any_app_and_keeps_every_count(ann):
    june = Campaign.objects.get(name="June news")
    stats_before = CampaignStats.objects.filter(campaign=june).values().get()
    classes_before = dict(Event.objects.values_list("uid", "classification"))
    hashes_before = list(
        Delivery.objects.order_by("id").values_list("email_hash", "domain", "status")
    )

    subscriber_erase(subscriber=ann)
    ann.refresh_from_db()

    dumps = [
        json.dumps(subscriber_export(subscriber=ann), default=str),
        json.dumps([i["text"] for i in subscriber_timeline(ann)]),
        json.dumps(list(Delivery.objects.values("email", "error")), default=str),
        json.dumps(list(Event.objects.values("ip", "user_agent", "payload", "reason", "url"))),
        json.dumps(list(SentReply.objects.values("to_email", "subject", "text", "html", "fields"))),
        json.dumps(list(Signup.objects.values("ip", "user_agent", "source_page", "pending"))),
        json.dumps(list(ImportRejection.objects.values("reason", "raw"))),
        json.dumps(list(ExitSurveyResponse.objects.values("other_text"))),
    ]
    for text in dumps:
        text = text.lower().replace(f"erased-{ann.pk}@erased.invalid", "")
        for personal in PERSONAL:
            assert personal not in text, (personal, text)

    # Counts and what the reports and the suppression check read are untouched.
    assert CampaignStats.objects.filter(campaign=june).values().get() == stats_before
    assert dict(Event.objects.values_list("uid", "classification")) == classes_before
    assert list(Delivery.objects.order_by("id").values_list("email_hash", "domain", "status")) == (
        hashes_before
    )
    assert set(Delivery.objects.values_list("email", flat=True)) == {ann.email}
    assert not SandboxMessage.objects.exists()
    assert ImportRejection.objects.count() == 2
    assert ImportRejection.objects.get(line=5).raw == "bob@,Bob,Stone"
    assert ImportRejection.objects.get(line=4).reason == "duplicate of erased address"
    assert Signup.objects.get().source_page == "https://blog.example.org/post"
    assert Signup.objects.get().utm_source == "blog"
    assert SentReply.objects.get().subject == "Re: {{ topic }}"
    assert ExitSurveyResponse.objects.get().reasons == ["too-many"]
    # Re-running the classification rules must not turn the blanked proxy/scanner hits human.
    assert events_reclassify(campaign_id=june.pk) == 0
    assert dict(Event.objects.values_list("uid", "classification")) == classes_before


def test_a_delivery_still_queued_for_an_erased_person_is_skipped_by_its_hash():
    subscriber = SubscriberFactory(email=ADDRESS, status=Subscriber.Status.ACTIVE)
    campaign = _campaign("Autumn")
    campaign.status = Campaign.Status.RUNNING
    campaign.save()
    delivery = DeliveryFactory(campaign=campaign, subscriber=subscriber)

    subscriber_erase(subscriber=subscriber)

    lease = Lease(campaign_id=campaign.pk).acquire()
    assert claim_batch(campaign=campaign, lease=lease, limit=10) == []
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SKIPPED
    assert delivery.error == "Address suppressed at sending time."
    assert delivery.email == f"erased-{subscriber.pk}@erased.invalid"


def test_transactional_messages_to_their_address_are_exported_shown_and_erased_with_them(ann):
    """A transactional message is sent to an address and its delivery names no subscriber
    (one person gets many): the hooks find it by the address hash. It used to stay out of the
    export and the timeline, and keep the address and the caller's data after an erasure."""
    template = TemplateFactory(
        name="Order shipped", subject="Order {{ order_number }}", html_body="<p>{{ street }}</p>"
    )
    to_ann = send_transactional(
        template=template,
        to_email=ADDRESS.upper(),
        data={"order_number": "A-1001", "street": "12 Ann Lee Road"},
    ).delivery
    to_bob = send_transactional(
        template=template, to_email="bob@example.com", data={"street": "1 Bob Street"}
    ).delivery

    exported = subscriber_export(subscriber=ann)["deliveries"]
    assert [d["campaign"] for d in exported].count("Transactional: Order shipped") == 1
    assert "Queued: campaign “Transactional: Order shipped”" in [
        i["text"] for i in subscriber_timeline(ann)
    ]

    subscriber_erase(subscriber=ann)
    ann.refresh_from_db()
    to_ann.refresh_from_db()
    assert (to_ann.email, to_ann.data) == (ann.email, None)
    assert to_ann.email_hash == email_hash(ADDRESS)  # what the suppression check matches
    to_bob.refresh_from_db()
    assert (to_bob.email, to_bob.data) == ("bob@example.com", {"street": "1 Bob Street"})


def test_export_and_timeline_take_the_same_number_of_queries_for_one_row_or_many(ann):
    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            subscriber_export(subscriber=ann)
            subscriber_timeline(ann)
        return len(ctx.captured_queries)

    few = queries()
    now = timezone.now()
    form = SignupForm.objects.get()
    for i in range(5):
        campaign = _campaign(f"Extra {i}")
        delivery = DeliveryFactory(
            campaign=campaign, subscriber=ann, status=Delivery.Status.SENT, sent_at=now
        )
        ingest_facts(
            [Fact(uid=f"x{i}", kind="opened", occurred_at=now, delivery_id=delivery.pk,
                  ip=HUMAN_IP, user_agent=CHROME, method="GET")]
        )  # fmt: skip
        SentReplyFactory(subscriber=ann, to_email=ADDRESS, subject=f"Re {i}", text="", html="")
        SignupFactory(form=SignupFormFactory(name=f"F{i}", steps=[]), subscriber=ann)
        ExitSurveyResponseFactory(subscriber=ann, campaign=campaign, reasons=["too-many"])
    assert form.signups.count() == 1
    assert queries() == few


def test_a_timeline_source_returns_at_most_the_latest_200_items():
    subscriber = SubscriberFactory(email=ADDRESS)
    # 205 rows each: built by the factories, written in one INSERT (205 creates are slow).
    campaigns = Campaign.objects.bulk_create(
        CampaignFactory.build(bare=True, name=f"C{i}") for i in range(205)
    )
    Delivery.objects.bulk_create(
        DeliveryFactory.build(
            campaign=c, subscriber=subscriber, email=ADDRESS, email_hash="h", domain="d"
        )
        for c in campaigns
    )
    items = deliveries_timeline(subscriber)
    assert len(items) == 200
    assert items[0]["text"] == "Queued: campaign “C204”"
