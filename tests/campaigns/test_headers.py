from campaigns.models import Delivery
from campaigns.pipeline import campaign_send_work
from campaigns.services import campaign_start
from core.recipient_links import read_recipient_token
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    TemplateFactory,
    make_audience,
)
from tests.support.sending import message_id


def test_the_message_the_smtp_sink_received_carries_every_required_header(db, smtp_sink):
    topic, subs = make_audience(1)
    campaign = CampaignFactory(
        topic=topic,
        connection=SendingConnectionFactory(sink=smtp_sink),
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
    topic, _ = make_audience(1)
    campaign = CampaignFactory(
        topic=topic,
        connection=SendingConnectionFactory(sink=smtp_sink),
        template=TemplateFactory(subject="Été chez {{ first_name }} ✨"),
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
    campaign = CampaignFactory(topic=topic)
    context = MessageFactory(campaign, test_send=True).context(
        delivery_id=77, subscriber_id=subs[0].pk, recipient=recipient_context(subs[0])
    )
    assert context["unsubscribe_url"] == unsubscribe_url(subscriber_id=subs[0].pk, delivery_id=77)
    assert context["preferences_url"] == preferences_url(subscriber_id=subs[0].pk, delivery_id=77)


def test_headers_by_the_book_crlf_folding_ascii_ids_and_a_list_id_per_list(db, smtp_sink):
    topic, _ = make_audience(1)
    long_subject = "Les nouveautés de l'été chez Ünïcode : " + "très " * 20 + "{{ first_name }}"
    first = CampaignFactory(
        topic=topic,
        connection=SendingConnectionFactory(sink=smtp_sink),
        template=TemplateFactory(subject=long_subject),
        tags=["été", "promo"],
        name="Internal name 1",
    )
    campaign_start(campaign=first)
    campaign_send_work(campaign_id=first.pk)
    second = CampaignFactory(topic=topic, connection=first.connection, name="Autre nom")
    campaign_start(campaign=second)
    campaign_send_work(campaign_id=second.pk)

    raw_first, _ = (e.content for e in smtp_sink.envelopes)
    head = raw_first.partition(b"\r\n\r\n")[0]
    # Every line ends with CRLF, the long encoded subject is folded, and no bare LF anywhere.
    assert b"\n" not in raw_first.replace(b"\r\n", b"")
    assert b"\r\n " in head.split(b"Subject:", 1)[1].split(b"\r\nDate:", 1)[0]
    assert head.isascii()  # Feedback-ID and List-Id included: no raw 8-bit byte
    first_message, second_message = smtp_sink.parsed()
    assert first_message["Subject"].endswith("très F0")
    assert first_message["Feedback-ID"] == f"{first.pk}:ete:newsletter:nofailmail"
    # The same list, whatever each campaign is called inside the app.
    assert first_message["List-Id"] == second_message["List-Id"]
    assert "Internal" not in first_message["List-Id"]


def test_message_ids_differ_across_installs_and_database_resets(db, settings):
    from campaigns.messages import message_id_tag

    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic)
    here = message_id_tag(campaign)
    settings.SECRET_KEY = "another-install-" + "x" * 40
    elsewhere = message_id_tag(campaign)
    assert here != elsewhere
    # After a reset the same ids come back, with another creation time.
    settings.SECRET_KEY = "another-install-" + "x" * 40
    campaign.created_at = campaign.created_at.replace(
        microsecond=(campaign.created_at.microsecond + 1) % 10**6
    )
    assert message_id_tag(campaign) != elsewhere


def test_postmark_gets_campaign_mail_on_its_broadcast_stream(db):
    """The real anymail Postmark backend, pointed at a loopback stand-in for Postmark's API."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = []

    class Postmark(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, body))
            answer = json.dumps(
                {"To": body["To"], "MessageID": "pm-1", "ErrorCode": 0, "Message": "OK"}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Postmark)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        connection = SendingConnectionFactory(
            name="postmark",
            backend="anymail.backends.postmark.EmailBackend",
            options={
                "server_token": "server-token",
                "api_url": f"http://127.0.0.1:{server.server_port}/",
            },
        )
        topic, _ = make_audience(1)
        campaign = CampaignFactory(topic=topic, connection=connection)
        campaign_start(campaign=campaign)
        assert campaign_send_work(campaign_id=campaign.pk) == "done"
    finally:
        server.shutdown()
        server.server_close()
    assert received, list(Delivery.objects.values_list("status", "error"))
    ((path, body),) = received
    assert path == "/email"
    assert body["MessageStream"] == "broadcast"
    assert Delivery.objects.get(campaign=campaign).message_id == "pm-1"
