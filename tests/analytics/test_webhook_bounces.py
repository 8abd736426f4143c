"""Every ESP's bounces, from its documented payloads through its real endpoint, filed as what
they were: hard (suppressed at once), soft (kept, counted), or a refusal of the sender (kept,
counted against the sending domain)."""

import pytest
from django.utils import timezone

from analytics.ingest import Fact, ingest_facts
from analytics.models import CampaignStats, DeliveryActivity, Event, ReputationAlert
from campaigns.models import Campaign
from subscribers.models import Subscriber, Suppression
from tests.analytics import esps
from tests.support.factories import create_sent_campaign

GMAIL_DMARC = (
    "550-5.7.26 Unauthenticated email from news.example.com is not accepted due to domain's "
    "DMARC policy. Please contact the administrator of news.example.com domain."
)
OUTLOOK_AUTH = (
    "550 5.7.515 Access denied, sending domain news.example.com doesn't meet the required "
    "authentication level."
)
SPAMHAUS = "554 5.7.1 Service unavailable; Client host [18.236.253.72] blocked using Spamhaus"
UNKNOWN = "550 5.1.1 The email account that you tried to reach does not exist."
FULL = "552 5.2.2 The email account that you tried to reach is over quota."
LATER = "452 4.2.2 The email account that you tried to reach is over quota."

# (esp, the ESP's own kind of bounce, the receiver's reply, other fields, what it is)
CASES = [
    ("amazon_ses", "permanent", "smtp; " + UNKNOWN, {}, "hard"),
    ("amazon_ses", "transient", "smtp; " + FULL, {}, "soft"),
    ("amazon_ses", "undetermined", "", {}, "sender"),
    ("amazon_ses", "content", "smtp; 550 5.3.0 Content rejected", {}, "sender"),
    ("amazon_ses", "permanent", "smtp; " + GMAIL_DMARC, {}, "sender"),
    ("brevo", "hard_bounce", UNKNOWN, {}, "hard"),
    ("brevo", "invalid_email", "", {}, "hard"),
    ("brevo", "soft_bounce", LATER, {}, "soft"),
    ("brevo", "hard_bounce", OUTLOOK_AUTH, {}, "sender"),
    ("sendinblue", "hard_bounce", UNKNOWN, {}, "hard"),
    ("sendinblue", "soft_bounce", "Mailbox full", {}, "soft"),
    ("mailersend", "hard_bounced", "Host or domain name not found", {}, "hard"),
    ("mailersend", "soft_bounced", "Unknown reason", {}, "soft"),
    ("mailersend", "hard_bounced", SPAMHAUS, {}, "sender"),
    ("mailgun", "permanent", UNKNOWN, {}, "hard"),
    ("mailgun", "temporary", LATER, {}, "deferred"),
    ("mailgun", "permanent", LATER, {"reason": "old"}, "soft"),
    ("mailgun", "permanent", GMAIL_DMARC, {}, "sender"),
    ("mailgun", "permanent", "550 Message rejected", {"reason": "espblock"}, "sender"),
    (
        "mailjet",
        "bounce",
        "",
        {"hard_bounce": True, "error_related_to": "recipient", "error": "user unknown"},
        "hard",
    ),
    (
        "mailjet",
        "bounce",
        "",
        {"hard_bounce": False, "error_related_to": "recipient", "error": "quota exceeded"},
        "soft",
    ),
    (
        "mailjet",
        "bounce",
        "",
        {"hard_bounce": True, "error_related_to": "spam", "error": "sender blocked"},
        "sender",
    ),
    ("mailtrap", "bounce", f"bounced ({UNKNOWN})", {"bounce_category": "hard"}, "hard"),
    ("mailtrap", "soft bounce", f"soft bounce ({LATER})", {}, "deferred"),
    (
        "mailtrap",
        "bounce",
        "bounced (554 5.7.9 Message not accepted for policy reasons)",
        {},
        "sender",
    ),
    ("mandrill", "hard_bounce", "smtp;" + UNKNOWN, {"bounce_description": "bad_mailbox"}, "hard"),
    ("mandrill", "soft_bounce", "smtp;" + FULL, {"bounce_description": "mailbox_full"}, "soft"),
    (
        "mandrill",
        "hard_bounce",
        "smtp;" + SPAMHAUS,
        {"bounce_description": "general", "bgtools_code": 51},
        "sender",
    ),
    ("postal", "HardFail", UNKNOWN, {}, "hard"),
    ("postal", "bounced", "", {}, "hard"),
    ("postal", "SoftFail", LATER, {}, "deferred"),
    ("postal", "HardFail", GMAIL_DMARC, {}, "sender"),
    ("postmark", "HardBounce", "smtp;" + UNKNOWN, {}, "hard"),
    ("postmark", "BadEmailAddress", "", {}, "hard"),
    ("postmark", "SoftBounce", "smtp;" + FULL, {}, "soft"),
    ("postmark", "Blocked", "smtp;554 5.7.1 Message rejected due to content", {}, "sender"),
    ("postmark", "DMARCPolicy", "", {}, "sender"),
    ("postmark", "HardBounce", "smtp;" + OUTLOOK_AUTH, {}, "sender"),
    ("resend", "permanent", "", {}, "hard"),
    ("resend", "transient", "", {}, "soft"),
    ("resend", "undetermined", "", {}, "sender"),
    ("sendgrid", "bounce", UNKNOWN, {"bounce_classification": "Invalid Address"}, "hard"),
    (
        "sendgrid",
        "blocked",
        "421 4.7.0 Try again later",
        {"bounce_classification": "Technical"},
        "soft",
    ),
    ("sendgrid", "blocked", SPAMHAUS, {"bounce_classification": "Reputation"}, "sender"),
    ("sendgrid", "bounce", GMAIL_DMARC, {}, "sender"),
    ("sparkpost", "bounce", UNKNOWN, {"bounce_class": "10"}, "hard"),
    ("sparkpost", "out_of_band", UNKNOWN, {"bounce_class": "10"}, "hard"),
    ("sparkpost", "bounce", FULL, {"bounce_class": "22"}, "soft"),
    ("sparkpost", "bounce", "550 5.7.1 Mail block", {"bounce_class": "50"}, "sender"),
    ("sparkpost", "bounce", SPAMHAUS, {"bounce_class": "51"}, "sender"),
    ("unisender_go", "hard_bounced", UNKNOWN, {"delivery_status": "err_user_unknown"}, "hard"),
    ("unisender_go", "hard_bounced", FULL, {"delivery_status": "err_mailbox_full"}, "soft"),
    ("unisender_go", "soft_bounced", LATER, {"delivery_status": "err_will_retry"}, "deferred"),
    (
        "unisender_go",
        "hard_bounced",
        "550 5.7.1 Message rejected as spam",
        {"delivery_status": "err_spam_rejected"},
        "sender",
    ),
]


@pytest.fixture(autouse=True)
def _anymail(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, **esps.SETTINGS}


def _delivered(deliveries):
    """What the ESP reported before: delivered (the setting, not what is under test)."""
    ingest_facts(
        [
            Fact(uid=f"d-{d.pk}", kind="delivered", occurred_at=timezone.now(), delivery_id=d.pk)
            for d in deliveries
        ]
    )


@pytest.mark.parametrize(
    ("esp", "variant", "reply", "extra", "expected"),
    CASES,
    ids=[f"{c[0]}-{c[1]}-{c[4]}" for c in CASES],
)
def test_each_esps_bounces_are_filed_as_the_esp_and_the_receiver_say(
    client, sent_campaign, esp, variant, reply, extra, expected
):
    campaign, _, deliveries = sent_campaign
    d = esps.numbered(deliveries[0])
    payload = esps.bounce(esp, d, variant=variant, reply=reply, **extra)
    response = esps.post(client, esp, payload)
    assert response.status_code == 200, response.content
    event = Event.objects.get()
    stats = CampaignStats.objects.get(campaign=campaign)
    subscriber = Subscriber.objects.get(pk=d.subscriber_id)
    suppressed = Suppression.objects.filter(email_hash=d.email_hash).exists()
    assert event.delivery_id == d.pk
    if expected == "deferred":
        assert (event.kind, event.bounce_type, stats.deferred) == ("deferred", "", 1)
        assert not suppressed
        return
    assert (event.kind, event.bounce_type) == ("bounced", expected)
    assert (stats.bounced_hard, stats.bounced_soft, stats.bounced_sender) == (
        int(expected == "hard"),
        int(expected == "soft"),
        int(expected == "sender"),
    )
    assert suppressed == (expected == "hard")
    assert subscriber.status == ("bounced" if expected == "hard" else "active")
    assert DeliveryActivity.objects.get(delivery=d).bounce_type == expected


def test_a_mailjet_soft_bounce_after_a_brevo_one_counts_once_as_soft(client, sent_campaign):
    campaign, _, deliveries = sent_campaign
    d = esps.numbered(deliveries[0])
    soft = esps.bounce("brevo", d, variant="soft_bounce", reply=LATER)
    assert esps.post(client, "brevo", soft).status_code == 200
    mailjet = esps.bounce(
        "mailjet",
        d,
        variant="bounce",
        hard_bounce=False,
        error_related_to="recipient",
        error="quota exceeded",
    )
    assert esps.post(client, "mailjet", mailjet).status_code == 200
    assert sorted(Event.objects.values_list("esp", "bounce_type")) == [
        ("brevo", "soft"),
        ("mailjet", "soft"),
    ]
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.bounced_hard, stats.bounced_soft) == (0, 1)
    assert not Suppression.objects.exists()


def test_a_hard_bounce_after_another_esps_soft_bounce_moves_the_count_to_hard(
    client, sent_campaign
):
    # The ESP posts each event on its own request: the soft bounce is already counted when
    # the hard one arrives, and its -1 used to break the counters' >= 0 check in the upsert
    # (IntegrityError, the event lost, the ESP retrying for ever).
    campaign, _, deliveries = sent_campaign
    d = esps.numbered(deliveries[0])
    soft = esps.bounce("brevo", d, variant="soft_bounce", reply=LATER)
    assert esps.post(client, "brevo", soft).status_code == 200
    hard = esps.bounce(
        "mailjet",
        d,
        variant="bounce",
        hard_bounce=True,
        error_related_to="recipient",
        error="user unknown",
    )
    assert esps.post(client, "mailjet", hard).status_code == 200
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.bounced_hard, stats.bounced_soft) == (1, 0)
    assert DeliveryActivity.objects.get(delivery=d).bounce_type == "hard"
    assert Suppression.objects.get(email_hash=d.email_hash).reason == "hard_bounce"


def test_a_soft_bounce_that_turns_into_a_block_of_the_sender_counts_once_as_sender(
    client, sent_campaign
):
    campaign, _, deliveries = sent_campaign
    d = esps.numbered(deliveries[0])
    soft = esps.bounce("sparkpost", d, variant="bounce", reply=FULL, bounce_class="22")
    block = esps.bounce("sparkpost", d, variant="bounce", reply=SPAMHAUS, bounce_class="51")
    block[0]["msys"]["message_event"]["event_id"] = "another-event"
    assert esps.post(client, "sparkpost", soft).status_code == 200
    assert esps.post(client, "sparkpost", block).status_code == 200
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.bounced_hard, stats.bounced_soft, stats.bounced_sender) == (0, 0, 1)
    assert not Suppression.objects.exists()


def test_refusals_of_the_sender_alert_and_pause_the_domains_running_campaigns(
    client, settings, viewer_user
):
    settings.REPUTATION_MIN_VOLUME = 10
    campaign, _, deliveries = create_sent_campaign(name="Running", status="running", n=20)
    elsewhere, _, _ = create_sent_campaign(
        name="Elsewhere", status="running", n=1, domain="other.example"
    )
    _delivered(deliveries[:19])
    assert not ReputationAlert.objects.exists()

    # 1 in 20 refused for DMARC: 5 %, over the 2 % critical line.
    d = esps.numbered(deliveries[19])
    assert (
        esps.post(client, "postmark", esps.bounce("postmark", d, variant="DMARCPolicy")).status_code
        == 200
    )

    alerts = {(a.scope, a.metric, a.level) for a in ReputationAlert.objects.all()}
    assert ("domain", "sender_bounces", "critical") in alerts
    assert ("campaign", "sender_bounces", "critical") in alerts
    assert not any(metric == "hard_bounces" for _, metric, _ in alerts)
    domain_alert = ReputationAlert.objects.get(scope="domain")
    assert domain_alert.key == "news.example.com" and campaign.pk in domain_alert.paused_campaigns
    assert "Sender-caused" in domain_alert.message
    campaign.refresh_from_db()
    elsewhere.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert elsewhere.status == Campaign.Status.RUNNING
    # The address did nothing wrong: it stays on the list.
    assert not Suppression.objects.exists()
    assert Subscriber.objects.get(pk=d.subscriber_id).status == Subscriber.Status.ACTIVE

    # What the marketer sees: the alert, the domain's rate, the campaign's count.
    client.force_login(viewer_user)
    home = client.get("/analytics/").content.decode()
    assert "Sender-caused rejection rate" in home and "Refused as sender <strong>5.00" in home
    report = client.get(f"/analytics/campaigns/{campaign.pk}/").content.decode()
    assert "<strong>1</strong> refused for the sender" in report


def test_a_few_refusals_of_the_sender_only_warn(client, settings, db):
    settings.REPUTATION_MIN_VOLUME = 10
    campaign, _, deliveries = create_sent_campaign(name="Running", status="running", n=100)
    _delivered(deliveries[:99])
    d = esps.numbered(deliveries[99])
    blocked = esps.bounce("postmark", d, variant="Blocked", reply="smtp;" + SPAMHAUS)
    assert esps.post(client, "postmark", blocked).status_code == 200  # 1 %: a warning
    assert {(a.metric, a.level) for a in ReputationAlert.objects.all()} == {
        ("sender_bounces", "warning")
    }
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING
