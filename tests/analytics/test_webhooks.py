"""The ESPs' documented payload shapes, posted to the real anymail endpoints with basic auth."""

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from analytics import buffer
from analytics.models import CampaignStats, DeliveryActivity, Event
from subscribers.models import Subscriber, Suppression, email_hash

AUTH = "esp:hook-secret"
MAILGUN_KEY = "mailgun-signing-key"


@pytest.fixture(autouse=True)
def _anymail(settings):
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "WEBHOOK_SECRET": AUTH,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
    }


def post(client, esp, payload, *, auth=AUTH, **headers):
    """POST to the ESP's endpoint, then run the flusher as beat does (the events are
    buffered)."""
    response = client.post(
        f"/anymail/{esp}/tracking/",
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(auth.encode()).decode(),
        **headers,
    )
    buffer.flush()
    return response


def mailgun(event_data):
    timestamp, token = str(int(time.time())), "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    signature = hmac.new(
        MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256
    ).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }


def mailgun_failed(delivery, *, severity="permanent", event_id="G9Bn5sl1TC6bjEmrB3Ta0A"):
    return mailgun(
        {
            "id": event_id,
            "timestamp": time.time(),
            "log-level": "error",
            "event": "failed",
            "severity": severity,
            "reason": "bounce" if severity == "permanent" else "generic",
            "recipient": delivery.email,
            "recipient-domain": delivery.domain,
            "message": {"headers": {"message-id": delivery.message_id.strip("<>")}},
            "delivery-status": {
                "attempt-no": 1,
                "code": 550 if severity == "permanent" else 452,
                "message": "5.1.1 The email account that you tried to reach does not exist.",
                "description": "",
            },
            "flags": {"is-test-mode": False},
        }
    )


def postmark(record_type, delivery, **fields):
    base = {
        "RecordType": record_type,
        "ID": 4323372036854775807,
        "MessageID": delivery.message_id,
        "ServerID": 23,
        "MessageStream": "outbound",
        "Tag": "",
        "Metadata": {},
    }
    if record_type == "Delivery":
        base.update(
            Recipient=delivery.email,
            DeliveredAt="2026-11-05T16:33:54.9070259Z",
            Details="Test delivery webhook details",
        )
    else:
        base.update(
            Type=fields.pop("Type", "HardBounce"),
            TypeCode=1,
            Name="Hard bounce",
            Description="The server was unable to deliver your message (ex: unknown user).",
            Details="smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            Email=delivery.email,
            From="hello@news.example.com",
            BouncedAt="2026-11-05T16:33:54.9070259Z",
            DumpAvailable=True,
            Inactive=True,
            CanActivate=True,
            Subject="Spring sale",
        )
    base.update(fields)
    return base


def test_webhooks_refuse_requests_without_the_secret(client, sent_campaign):
    _, _, deliveries = sent_campaign
    response = post(client, "postmark", postmark("Delivery", deliveries[0]), auth="esp:wrong")
    assert response.status_code == 400
    assert Event.objects.count() == 0


def test_a_postmark_delivery_marks_the_delivery_delivered(client, sent_campaign):
    campaign, _, deliveries = sent_campaign
    assert post(client, "postmark", postmark("Delivery", deliveries[0])).status_code == 200
    activity = DeliveryActivity.objects.get(delivery=deliveries[0])
    assert activity.esp_status == "delivered" and activity.delivered_at is not None
    assert CampaignStats.objects.get(campaign=campaign).delivered == 1


def test_a_postmark_hard_bounce_suppresses_at_once(client, sent_campaign):
    campaign, _, deliveries = sent_campaign
    d = deliveries[0]
    assert post(client, "postmark", postmark("Bounce", d)).status_code == 200
    suppression = Suppression.objects.get(email_hash=email_hash(d.email))
    assert suppression.reason == Suppression.Reason.HARD_BOUNCE
    assert Subscriber.objects.get(pk=d.subscriber_id).status == Subscriber.Status.BOUNCED
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.bounced_hard, stats.bounced_soft) == (1, 0)
    event = Event.objects.get()
    assert (event.kind, event.bounce_type, event.esp) == ("bounced", "hard", "postmark")


def test_the_same_event_delivered_twice_counts_once(client, sent_campaign):
    campaign, _, deliveries = sent_campaign
    payload = postmark("SpamComplaint", deliveries[1], Type="SpamComplaint", TypeCode=512)
    assert post(client, "postmark", payload).status_code == 200
    assert post(client, "postmark", payload).status_code == 200
    assert Event.objects.count() == 1
    assert CampaignStats.objects.get(campaign=campaign).complained == 1
    assert Subscriber.objects.get(pk=deliveries[1].subscriber_id).status == "complained"
    assert Suppression.objects.get(email_hash=deliveries[1].email_hash).reason == "complaint"


def test_an_unknown_message_id_is_recorded_not_a_crash(client, sent_campaign):
    payload = postmark("Delivery", sent_campaign[2][0], MessageID="not-ours-123")
    payload["Recipient"] = "stranger@example.org"
    assert post(client, "postmark", payload).status_code == 200
    event = Event.objects.get()
    assert event.delivery_id is None and event.message_id == "not-ours-123"
    assert not CampaignStats.objects.exists()


def test_a_mailgun_permanent_failure_is_a_hard_bounce(client, sent_campaign):
    _, _, deliveries = sent_campaign
    d = deliveries[0]
    assert post(client, "mailgun", mailgun_failed(d)).status_code == 200
    event = Event.objects.get()
    assert (event.kind, event.bounce_type, event.delivery_id) == ("bounced", "hard", d.pk)
    assert Suppression.objects.filter(email_hash=d.email_hash).exists()


def test_a_mailgun_temporary_failure_is_a_deferral_not_a_suppression(client, sent_campaign):
    campaign, _, deliveries = sent_campaign
    d = deliveries[0]
    assert post(client, "mailgun", mailgun_failed(d, severity="temporary")).status_code == 200
    assert Event.objects.get().kind == "deferred"
    assert not Suppression.objects.exists()
    assert CampaignStats.objects.get(campaign=campaign).deferred == 1


def test_a_mailgun_complaint_with_a_bad_signature_is_refused(client, sent_campaign):
    payload = mailgun_failed(sent_campaign[2][0])
    payload["signature"]["signature"] = "0" * 64
    assert post(client, "mailgun", payload).status_code == 400
    assert Event.objects.count() == 0


def sns(ses_message, message_id="22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"):
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events",
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(ses_message),
        "Timestamp": "2026-11-05T12:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+..",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&x=1",
    }


def ses_mail(deliveries):
    return {
        "timestamp": "2026-11-05T11:59:58.000Z",
        "source": "hello@news.example.com",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/news.example.com",
        "messageId": deliveries[0].message_id.strip("<>"),
        "destination": [d.email for d in deliveries],
        "headersTruncated": False,
    }


def post_sns(client, payload):
    return post(
        client,
        "amazon_ses",
        payload,
        HTTP_X_AMZ_SNS_MESSAGE_TYPE=payload["Type"],
        HTTP_X_AMZ_SNS_MESSAGE_ID=payload["MessageId"],
    )


def test_amazon_ses_bounces_through_sns_tell_permanent_from_transient(client, sent_campaign):
    _, _, deliveries = sent_campaign
    for d in deliveries[:2]:
        d.message_id = "0100017e-ses-shared-id"
        d.save()
    message = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": deliveries[0].email,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": "2026-11-05T12:00:00.000Z",
            "feedbackId": "0100017e-bounce-feedback",
            "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
        },
        "mail": ses_mail(deliveries[:2]),
    }
    assert post_sns(client, sns(message)).status_code == 200
    transient = json.loads(json.dumps(message))
    transient["bounce"]["bounceType"] = "Transient"
    transient["bounce"]["bouncedRecipients"][0]["emailAddress"] = deliveries[1].email
    assert post_sns(client, sns(transient, message_id="second-sns-id")).status_code == 200
    by_delivery = {e.delivery_id: e.bounce_type for e in Event.objects.all()}
    assert by_delivery == {deliveries[0].pk: "hard", deliveries[1].pk: "soft"}
    assert Suppression.objects.filter(email_hash=deliveries[0].email_hash).exists()
    assert not Suppression.objects.filter(email_hash=deliveries[1].email_hash).exists()


def test_an_amazon_ses_complaint_suppresses(client, sent_campaign):
    _, _, deliveries = sent_campaign
    message = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": deliveries[2].email}],
            "timestamp": "2026-11-05T12:05:00.000Z",
            "feedbackId": "0100017e-complaint",
            "complaintFeedbackType": "abuse",
            "userAgent": "Yahoo!-Mail-Feedback/2.0",
        },
        "mail": ses_mail([deliveries[2]]),
    }
    assert post_sns(client, sns(message)).status_code == 200
    assert Suppression.objects.get(email_hash=deliveries[2].email_hash).reason == "complaint"


def brevo(event, delivery, **extra):
    return {
        "event": event,
        "email": delivery.email,
        "id": 123456,
        "date": "2026-11-05 13:00:00",
        "ts": 1793883600,
        "message-id": delivery.message_id,
        "ts_event": 1793883600,
        "subject": "Spring sale",
        "tag": "",
        "sending_ip": "185.41.28.109",
        "ts_epoch": int(time.time() * 1000),
        "tags": [],
        **extra,
    }


def test_brevo_soft_bounces_suppress_after_the_limit(client, settings, sent_campaign):
    settings.SOFT_BOUNCE_LIMIT = 3
    _, _, deliveries = sent_campaign
    d = deliveries[0]
    for i in range(3):
        payload = brevo(
            "soft_bounce",
            d,
            reason="452 4.2.2 Mailbox full",
            ts_epoch=1_000 * (int(time.time()) - 3600 * i),
        )
        assert post(client, "brevo", payload).status_code == 200
        suppressed = Suppression.objects.filter(email_hash=d.email_hash).exists()
        assert suppressed == (i == 2)
    assert Event.objects.filter(bounce_type="soft").count() == 3
    assert Subscriber.objects.get(pk=d.subscriber_id).status == Subscriber.Status.BOUNCED


def test_old_soft_bounces_do_not_count(client, settings, sent_campaign):
    settings.SOFT_BOUNCE_LIMIT, settings.SOFT_BOUNCE_DAYS = 2, 30
    d = sent_campaign[2][1]
    old = timezone.now() - timedelta(days=40)
    post(client, "brevo", brevo("soft_bounce", d, ts_epoch=int(old.timestamp() * 1000)))
    post(client, "brevo", brevo("soft_bounce", d))
    assert Event.objects.count() == 2
    assert not Suppression.objects.exists()


def test_a_brevo_unsubscribe_unsubscribes_the_subscriber(client, sent_campaign):
    campaign, _, deliveries = sent_campaign
    assert post(client, "brevo", brevo("unsubscribe", deliveries[1])).status_code == 200
    assert Subscriber.objects.get(pk=deliveries[1].subscriber_id).status == "unsubscribed"
    assert CampaignStats.objects.get(campaign=campaign).unsubscribed == 1


def sparkpost(event_type, delivery, **fields):
    return [
        {
            "msys": {
                "message_event": {
                    "type": event_type,
                    "event_id": fields.pop("event_id", "92356927693813856"),
                    "transmission_id": delivery.message_id,
                    "message_id": "0002a4b5e15f5f52a1c2",
                    "rcpt_to": delivery.email,
                    "raw_rcpt_to": delivery.email,
                    "timestamp": str(int(time.time())),
                    "customer_id": "1",
                    "friendly_from": "hello@news.example.com",
                    "ip_address": "127.0.0.1",
                    "sending_ip": "18.236.253.72",
                    "subject": "Spring sale",
                    **fields,
                }
            }
        }
    ]


def test_sparkpost_bounce_classes_and_opens(client, sent_campaign):
    campaign, _, deliveries = sent_campaign
    hard = sparkpost(
        "bounce",
        deliveries[0],
        bounce_class="10",
        event_id="1",
        raw_reason="550 5.1.1 <x>: Recipient address rejected",
        error_code="550",
    )
    soft = sparkpost(
        "bounce",
        deliveries[1],
        bounce_class="22",
        event_id="2",
        raw_reason="452 4.2.2 Mailbox full",
        error_code="452",
    )
    opened = sparkpost(
        "open",
        deliveries[2],
        event_id="3",
        user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0",
    )
    for payload in (hard, soft, opened):
        assert post(client, "sparkpost", payload).status_code == 200
    kinds = {e.delivery_id: (e.kind, e.bounce_type) for e in Event.objects.all()}
    assert kinds == {
        deliveries[0].pk: ("bounced", "hard"),
        deliveries[1].pk: ("bounced", "soft"),
        deliveries[2].pk: ("opened", ""),
    }
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.bounced_hard, stats.bounced_soft, stats.unique_human_opens) == (1, 1, 1)
