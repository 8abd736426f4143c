import base64
import json

import pytest
from django.urls import reverse

from core.recipient_links import UNSUBSCRIBE, recipient_token
from subscribers.models import Subscriber

AUTH = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"hook:s3cret").decode()}


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:s3cret"}
    settings.UNSUBSCRIBE_MAILTO = "unsubscribe@news.example.com"


def _postmark_inbound(*, sender: str, subject: str, to: str = "unsubscribe@news.example.com"):
    # The shape of Postmark's inbound webhook (postmarkapp.com/developer/webhooks/inbound-webhook)
    return {
        "FromName": "Ada",
        "MessageStream": "inbound",
        "From": sender,
        "FromFull": {"Email": sender, "Name": "Ada", "MailboxHash": ""},
        "To": to,
        "ToFull": [{"Email": to, "Name": "", "MailboxHash": ""}],
        "Cc": "",
        "CcFull": [],
        "Bcc": "",
        "BccFull": [],
        "OriginalRecipient": to,
        "Subject": subject,
        "MessageID": "73e6d360-66eb-11e1-8e72-a8904824019b",
        "ReplyTo": "",
        "MailboxHash": "",
        "Date": "Fri, 1 Aug 2026 16:45:32 -04:00",
        "TextBody": "",
        "HtmlBody": "",
        "StrippedTextReply": "",
        "Tag": "",
        "Headers": [{"Name": "X-Spam-Status", "Value": "No"}],
        "Attachments": [],
    }


def _post(client, payload, **extra):
    return client.post(
        reverse("anymail:postmark_inbound_webhook"),
        data=json.dumps(payload),
        content_type="application/json",
        **extra,
    )


def test_mail_to_the_mailto_address_unsubscribes_the_token_holder(client, subscriber):
    # As in the List-Unsubscribe header: mailto:unsubscribe@...?subject=unsubscribe%20<token>
    token = recipient_token(UNSUBSCRIBE, subscriber_id=subscriber.pk)
    payload = _postmark_inbound(sender="alias@other.example", subject=f"unsubscribe {token}")
    assert _post(client, payload, **AUTH).status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED


def test_without_the_token_the_sender_is_unsubscribed(client, subscriber):
    payload = _postmark_inbound(sender="ADA@example.com", subject="unsubscribe")
    assert _post(client, payload, **AUTH).status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.UNSUBSCRIBED


def test_mail_to_another_address_is_ignored(client, subscriber):
    payload = _postmark_inbound(
        sender="ada@example.com", subject="unsubscribe", to="hello@news.example.com"
    )
    assert _post(client, payload, **AUTH).status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE


def test_the_webhook_refuses_posts_without_basic_auth(client, subscriber):
    payload = _postmark_inbound(sender="ada@example.com", subject="unsubscribe")
    assert _post(client, payload).status_code in (400, 401, 403)
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
