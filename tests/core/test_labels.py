"""What a marketer reads: plurals, names instead of slugs and raw values, a favicon, a page
that explains a 405, and the French preference center in French."""

import gettext
import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from core.recipient_links import PREFERENCES, recipient_token
from subscribers.models import Subscriber
from templates_app.services import template_create
from tests.support.factories import (
    CampaignFactory,
    SegmentFactory,
    SendingConnectionFactory,
    SendingDomainFactory,
    SubscriberFactory,
    TopicFactory,
)

pytestmark = pytest.mark.django_db


def _text(html: str) -> str:
    """Roughly what a browser shows: tags dropped, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


def test_the_template_tabs_say_canned_replies_and_tags_stand_apart(viewer_client):
    template_create(
        kind="canned_reply", name="Refund", subject="Re", html_body="<p>Hi</p>",
        tags=["canned reply", "en"],
    )  # fmt: skip
    body = viewer_client.get(reverse("templates_app:list")).content.decode()
    text = _text(body)
    assert "Canned replies" in text and "Newsletters" in text and "replys" not in text
    assert "canned reply en" in text and "canned replyen" not in text


def test_the_campaign_audience_has_no_stray_separator(editor_client):
    weekly = TopicFactory(name="Weekly", slug="weekly")
    segment = SegmentFactory(name="Pros", rules={"match": "all", "conditions": []})
    only_segment = CampaignFactory(bare=True, name="A", segment=segment)
    both = CampaignFactory(bare=True, name="B", segment=segment)
    both.topics.add(weekly)

    def audience(campaign):
        page = editor_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
        return _text(re.search(r'<span id="audience">.*?</span>', page).group(0))

    assert audience(only_segment) == "segment Pros"
    assert audience(both) == "Topics: Weekly · segment Pros"
    assert audience(CampaignFactory(bare=True, name="C")) == "none chosen yet"


def test_counts_use_proper_plurals(editor_client):
    topic = TopicFactory(name="Weekly", slug="weekly")
    campaign = CampaignFactory(bare=True, name="A")
    campaign.topics.add(topic)
    SubscriberFactory(email="ann@example.com", status="active", topics=[topic])
    page = _text(
        editor_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    )
    assert "1 recipient now" in page and "(s)" not in page


def test_the_segment_builder_names_topics_and_statuses(editor_client):
    TopicFactory(name="Weekly letter", slug="weekly")
    page = editor_client.get(reverse("subscribers:segment_create")).content.decode()
    fields = json.loads(re.search(r'<script id="[^"]*" type="application/json">(.*?)</script>',
                                  page, re.S).group(1))  # fmt: skip
    by_field = {f["field"]: f for f in fields}
    assert by_field["topic"]["labels"] == {"weekly": "Weekly letter"}
    assert by_field["status"]["labels"]["active"] == "Active"
    assert "def.labels[c]" in page  # the builder shows the label, keeps the stored value


def test_a_connection_shows_its_type_not_a_dotted_path(admin_client):
    SendingConnectionFactory(name="ses", backend="anymail.backends.amazon_ses.EmailBackend")
    SendingConnectionFactory(name="relay")
    text = _text(admin_client.get(reverse("campaigns:connections")).content.decode())
    assert "Amazon SES" in text and "SMTP" in text
    assert "anymail.backends" not in text and "EmailBackend" not in text


def test_domain_checks_and_reputation_show_labels(viewer_client):
    SendingDomainFactory(
        domain="news.example.com",
        checked_at=timezone.now(),
        results=[{"name": "SPF", "status": "warn", "detail": "soft fail"}],
    )
    text = _text(viewer_client.get(reverse("analytics:domains")).content.decode())
    assert "Warning SPF" in text and "warn SPF" not in text
    home = _text(viewer_client.get(reverse("analytics:home")).content.decode())
    assert "DNS: Not checked yet" in home


def test_the_utm_fields_stand_in_one_line(editor_client):
    campaign = CampaignFactory(bare=True, name="A", status="finished")
    page = editor_client.get(reverse("analytics:campaign", args=[campaign.pk])).content.decode()
    form = re.search(r'<form[^>]*id="tracking-form".*?</form>', page, re.S).group(0)
    assert "align-items-end" not in form
    # Each of the four fields has a help line, so no input sits lower than its neighbours.
    assert len(re.findall(r'class="form-text', form)) == 4


def test_the_french_preference_center_is_all_french(client):
    subscriber = SubscriberFactory(
        email="ada@example.com", status=Subscriber.Status.ACTIVE, language="fr"
    )
    page = client.get(
        reverse(
            "preferences:center", args=[recipient_token(PREFERENCES, subscriber_id=subscriber.pk)]
        )
    ).content.decode()
    assert "Chaque campagne" in page and "Every campaign" not in page


def test_every_french_message_is_translated_and_compiled():
    for po in Path(settings.BASE_DIR).glob("*/locale/*/LC_MESSAGES/django.po"):
        text = po.read_text()
        entries = re.findall(r'\nmsgid "(.+)"\nmsgstr "(.*)"', text)
        assert entries and all(msgstr for _, msgstr in entries), po
        with po.with_suffix(".mo").open("rb") as mo:
            catalog = gettext.GNUTranslations(mo)
        for msgid, msgstr in entries:
            assert catalog.gettext(msgid) == msgstr, f"{po}: recompile the .mo ({msgid})"


def test_the_favicon_is_linked_and_answered(client, viewer_client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"
    assert 'rel="icon"' in viewer_client.get(reverse("home")).content.decode()
    assert 'rel="icon"' in client.get(reverse("login")).content.decode()


def test_a_post_only_address_opened_with_get_explains_itself(editor_client):
    response = editor_client.get(
        reverse("subscribers:bulk"), HTTP_REFERER="http://testserver/subscribers/"
    )
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    body = response.content.decode()
    assert "only answers a form sent with a button" in body and "nothing was changed" in body
    assert 'href="http://testserver/subscribers/"' in body


def test_a_foreign_referer_is_not_offered_as_the_way_back(editor_client):
    response = editor_client.get(reverse("subscribers:bulk"), HTTP_REFERER="https://evil.example/")
    assert response.status_code == 405 and "evil.example" not in response.content.decode()


def test_htmx_gets_the_bare_405(editor_client):
    response = editor_client.get(reverse("subscribers:bulk"), HTTP_HX_REQUEST="true")
    assert response.status_code == 405 and response.content == b""
