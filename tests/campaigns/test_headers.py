from campaigns.models import Delivery
from campaigns.pipeline import campaign_send_work
from campaigns.services import campaign_start
from core.recipient_links import read_recipient_token

from .conftest import make_audience, make_campaign, message_id, smtp_connection


def test_the_message_the_smtp_sink_received_carries_every_required_header(db, smtp_sink):
    topic, subs = make_audience(1)
    campaign = make_campaign(
        topic=topic,
        connection=smtp_connection(smtp_sink),
        tags=["weekly"],
        reply_to="reply@sender.example",
    )
    campaign_start(campaign=campaign)
    campaign_send_work(campaign_id=campaign.pk)
    (message,) = smtp_sink.parsed()
    delivery = Delivery.objects.get(campaign=campaign)

    unsubscribe, mailto = [part.strip(" <>") for part in message["List-Unsubscribe"].split(",")]
    assert unsubscribe.startswith("http://") and "/r/u/" in unsubscribe
    token = unsubscribe.rstrip("/").rsplit("/", 1)[1]
    assert read_recipient_token("unsubscribe", token) == (subs[0].pk, delivery.pk)
    assert mailto.startswith("mailto:unsubscribe@sender.example")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Stable per list (the topic), not the campaign's internal name.
    assert message["List-Id"] == '"Weekly" <weekly.topics.sender.example>'
    assert message["Feedback-ID"] == f"{campaign.pk}:weekly:newsletter:nofailmail"
    assert message["Message-ID"] == message_id(delivery.pk, campaign)
    assert message["Message-ID"] == delivery.message_id
    assert message["X-NFM-Delivery"] == str(delivery.pk)
    assert message["From"] == "Sender <news@sender.example>"
    assert message["Reply-To"] == "reply@sender.example"
    assert message["To"] == "user0@example.org"
    assert message["Subject"] == "News for F0"

    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "Hello F0" in html
    # Footer: postal address, unsubscribe and preferences links, in both parts.
    for part in (html, text):
        assert "1 Example Street" in part
        assert unsubscribe in part
        assert "/r/p/" in part
    # Links are tracked: the destinations do not appear, tracking URLs do.
    assert "https://example.com/a" not in html
    assert html.count("/t/c/") == 2
    assert "/t/o/" in html


def test_non_ascii_subjects_and_names_are_encoded(db, smtp_sink):
    from .conftest import make_template

    topic, _ = make_audience(1)
    campaign = make_campaign(
        topic=topic,
        connection=smtp_connection(smtp_sink),
        template=make_template(subject="Été chez {{ first_name }} ✨"),
        from_name="Équipe Ünïcode",
    )
    campaign_start(campaign=campaign)
    campaign_send_work(campaign_id=campaign.pk)
    (message,) = smtp_sink.parsed()
    assert message["Subject"] == "Été chez F0 ✨"
    assert message["From"].addresses[0].display_name == "Équipe Ünïcode"


def test_recipient_urls_are_exactly_what_core_recipient_links_builds(db):
    from campaigns.messages import MessageFactory
    from core.recipient_links import preferences_url, unsubscribe_url
    from templates_app.fields import recipient_context

    topic, subs = make_audience(1)
    campaign = make_campaign(topic=topic)
    context = MessageFactory(campaign, test_send=True).context(
        delivery_id=77, subscriber_id=subs[0].pk, recipient=recipient_context(subs[0])
    )
    assert context["unsubscribe_url"] == unsubscribe_url(subscriber_id=subs[0].pk, delivery_id=77)
    assert context["preferences_url"] == preferences_url(subscriber_id=subs[0].pk, delivery_id=77)
