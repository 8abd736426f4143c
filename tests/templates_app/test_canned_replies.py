import email
from email import policy

import pytest

from templates_app.models import SentReply
from templates_app.selectors import current_version, sent_replies_for_subscriber
from templates_app.services import ReplyNotReady, reply_fields, reply_send, template_update
from tests.support.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def test_the_form_fields_come_from_the_template_tags(canned_reply):
    assert reply_fields(current_version(canned_reply)) == ["topic", "answer_date", "sender_name"]


def test_a_reply_is_sent_over_smtp_and_recorded_on_the_timeline(
    canned_reply, smtp_server, editor_user
):
    subscriber = SubscriberFactory(email="ada@example.com", first_name="Ada")
    sent = reply_send(
        version=current_version(canned_reply),
        to_email=subscriber.email,
        subscriber=subscriber,
        fields={"topic": "exports <CSV>", "answer_date": "Friday", "sender_name": "Sam"},
        user=editor_user,
    )
    [envelope] = smtp_server.envelopes
    assert envelope.rcpt_tos == ["ada@example.com"]
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    assert message["Subject"] == "Re: exports <CSV>"
    assert message["Message-ID"] == sent.message_id
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Hi Ada," in text and "by Friday." in text
    assert "about exports &lt;CSV&gt;." in html
    assert list(sent_replies_for_subscriber(subscriber.id)) == [sent]
    assert (sent.sent_by, sent.fields["sender_name"]) == (editor_user, "Sam")


def test_any_address_can_get_a_reply_without_a_subscriber(canned_reply, smtp_server):
    sent = reply_send(
        version=current_version(canned_reply),
        to_email="someone@example.org",
        fields={"topic": "pricing", "answer_date": "Monday", "sender_name": "Sam"},
    )
    assert sent.subscriber is None
    assert "Hi there," in sent.text
    assert smtp_server.envelopes[0].rcpt_tos == ["someone@example.org"]


def test_sending_is_refused_while_a_field_is_unfilled(canned_reply, smtp_server):
    with pytest.raises(ReplyNotReady) as info:
        reply_send(
            version=current_version(canned_reply),
            to_email="a@example.org",
            fields={"topic": "pricing", "answer_date": "  ", "sender_name": ""},
        )
    assert info.value.problems == ["Fill in “answer_date”.", "Fill in “sender_name”."]
    assert smtp_server.envelopes == []
    assert not SentReply.objects.exists()


def test_a_template_with_a_drafting_placeholder_cannot_be_sent(canned_reply, smtp_server):
    template_update(template=canned_reply, html_body="<p>Dear [name], about {{ topic }}</p>")
    with pytest.raises(ReplyNotReady) as info:
        reply_send(
            version=current_version(canned_reply), to_email="a@example.org", fields={"topic": "x"}
        )
    assert "Drafting placeholder '[name]'" in info.value.problems[0]
    assert smtp_server.envelopes == []


def test_a_placeholder_typed_into_a_field_is_refused_too(canned_reply, smtp_server):
    with pytest.raises(ReplyNotReady, match=r"Placeholder '\[topic\]' in “topic”"):
        reply_send(
            version=current_version(canned_reply),
            to_email="a@example.org",
            fields={"topic": "[topic]", "answer_date": "Monday", "sender_name": "Sam"},
        )
    assert smtp_server.envelopes == []


def test_brackets_in_subscriber_data_do_not_block_a_reply(canned_reply, smtp_server):
    subscriber = SubscriberFactory(email="b@example.com", first_name="Bo [work]")
    sent = reply_send(
        version=current_version(canned_reply),
        to_email=subscriber.email,
        subscriber=subscriber,
        fields={"topic": "pricing", "answer_date": "Monday", "sender_name": "Sam"},
    )
    assert "Hi Bo [work]," in sent.text
