import io

import pytest
from django.urls import reverse
from PIL import Image as PILImage

from templates_app.models import Image, SentReply, Template
from templates_app.services import template_create
from tests.support.factories import (
    LayoutFactory,
    SubscriberFactory,
)

pytestmark = pytest.mark.django_db

LAYOUT = (
    "<html><body>{{ content }}<p>{{ company_postal_address }}"
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
)


@pytest.fixture
def newsletter():
    layout = LayoutFactory(html=LAYOUT)
    return template_create(
        kind="newsletter",
        name="March news",
        subject="March news",
        preheader="Three things",
        html_body='<p>Hello {{ first_name|default:"there" }}</p>',
        layout=layout,
    )


def _form(template, **changes):
    data = {
        "kind": template.kind,
        "name": template.name,
        "language": "en",
        "subject": template.subject,
        "preheader": template.preheader,
        "layout": template.layout_id or "",
        "html_body": template.html_body,
        "text_body": "",
        "tags_text": "",
    }
    data.update(changes)
    return data


def test_viewers_read_templates_but_cannot_save(viewer_client, newsletter):
    assert viewer_client.get(reverse("templates_app:list")).status_code == 200
    page = viewer_client.get(reverse("templates_app:edit", args=[newsletter.pk]))
    assert page.status_code == 200
    assert b"Save (keeps a new version)" not in page.content
    response = viewer_client.post(
        reverse("templates_app:edit", args=[newsletter.pk]), _form(newsletter, subject="x")
    )
    assert response.status_code == 403
    newsletter.refresh_from_db()
    assert newsletter.subject == "March news"


def test_an_editor_creates_then_saves_a_new_version(editor_client):
    layout = LayoutFactory(html=LAYOUT)
    response = editor_client.post(
        reverse("templates_app:create", args=["newsletter"]),
        {
            "name": "April",
            "language": "en",
            "subject": "April news",
            "preheader": "p",
            "layout": layout.pk,
            "html_body": "<p>Hi</p>",
            "text_body": "",
            "tags_text": "monthly, news",
        },
    )
    template = Template.objects.get(name="April")
    assert response.status_code == 302
    assert (template.current_version, template.tags) == (1, ["monthly", "news"])
    response = editor_client.post(
        reverse("templates_app:edit", args=[template.pk]), _form(template, subject="April!")
    )
    assert response.status_code == 302
    template.refresh_from_db()
    assert (template.current_version, template.subject) == (2, "April!")


def test_a_malformed_tag_is_shown_with_its_position_and_nothing_is_saved(editor_client, newsletter):
    response = editor_client.post(
        reverse("templates_app:edit", args=[newsletter.pk]),
        _form(newsletter, html_body="<p>ok</p>\n<p>{{ first_name|shout }}</p>"),
    )
    assert response.status_code == 400
    assert "Unknown filter &#x27;shout&#x27;" in response.content.decode()
    assert "line 2, column 4" in response.content.decode()
    # The author's text is kept in the form, and the template is untouched.
    assert "{{ first_name|shout }}" in response.content.decode()
    newsletter.refresh_from_db()
    assert newsletter.current_version == 1


def test_live_lint_returns_findings_for_the_text_being_typed(editor_client, newsletter):
    response = editor_client.post(
        reverse("templates_app:lint"),
        _form(newsletter, html_body="<p>Dear [name]</p><img src='https://x.example/a.png'>"),
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-code="placeholder" data-severity="blocking"' in html
    assert 'data-code="image-without-alt"' in html
    assert "line 1, column 9" in html
    assert editor_client.get(reverse("templates_app:lint")).status_code == 405


def test_the_editor_page_wires_live_lint_with_htmx(editor_client, newsletter):
    html = editor_client.get(reverse("templates_app:edit", args=[newsletter.pk])).content.decode()
    assert f'hx-post="{reverse("templates_app:lint")}"' in html
    assert "No problems found." in html


def test_versions_can_be_listed_and_restored_by_post_only(editor_client, newsletter):
    editor_client.post(
        reverse("templates_app:edit", args=[newsletter.pk]), _form(newsletter, subject="Changed")
    )
    restore = reverse("templates_app:restore", args=[newsletter.pk, 1])
    assert editor_client.get(restore).status_code == 405
    page = editor_client.get(reverse("templates_app:versions", args=[newsletter.pk]))
    assert b"v2" in page.content and b"Restore" in page.content
    assert editor_client.post(restore).status_code == 302
    newsletter.refresh_from_db()
    assert (newsletter.current_version, newsletter.subject) == (3, "March news")


def test_preview_renders_for_a_chosen_subscriber_or_sample_data(viewer_client, newsletter):
    SubscriberFactory(email="zoe@example.com", first_name="Zoé<b>")
    url = reverse("templates_app:preview", args=[newsletter.pk])
    html = viewer_client.get(url, {"email": "zoe@example.com"}).content.decode()
    # The email HTML is escaped into srcdoc, and the value was escaped in the email itself.
    assert "Hello Zoé&amp;lt;b&amp;gt;" in html
    assert 'sandbox=""' in html and "width:375px" in html
    assert "Text part" in html and "Source" in html
    sample = viewer_client.get(url).content.decode()
    assert "Hello Camille" in sample
    missing = viewer_client.get(url, {"email": "nobody@example.com"}).content.decode()
    assert "No subscriber with the address nobody@example.com" in missing


def _png() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (800, 400), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def test_image_upload_refuses_non_images_and_serves_images_publicly(
    editor_client, client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    upload = reverse("templates_app:image_upload")
    from django.core.files.uploadedfile import SimpleUploadedFile

    bad = editor_client.post(
        upload, {"file": SimpleUploadedFile("x.jpg", b"MZ\x90\x00 an exe"), "alt_text": "x"}
    )
    assert bad.status_code == 400
    assert "not an image" in bad.content.decode()
    assert not Image.objects.exists()
    good = editor_client.post(
        upload, {"file": SimpleUploadedFile("banner.png", _png()), "alt_text": "Blue banner"}
    )
    assert good.status_code == 302
    image = Image.objects.get()
    assert image.content_type == "image/jpeg"  # opaque PNG re-encoded as JPEG
    client.logout()
    served = client.get(image.public_path)
    assert served.status_code == 200
    assert served["Content-Type"] == "image/jpeg"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert b"".join(served.streaming_content)[:3] == b"\xff\xd8\xff"
    assert client.get(reverse("templates_app:image_file", args=["nope.jpg"])).status_code == 404


def test_reply_with_a_template_previews_refuses_unfilled_then_sends(
    editor_client, canned_reply, smtp_server
):
    subscriber = SubscriberFactory(email="ada@example.com", first_name="Ada")
    start = editor_client.get(
        reverse("templates_app:reply_start"),
        {"to_email": "ada@example.com", "template": canned_reply.pk},
    )
    compose = reverse("templates_app:reply_compose", args=[canned_reply.pk])
    assert start.status_code == 302 and start["Location"] == compose + "?to=ada%40example.com"
    page = editor_client.get(compose, {"to": "ada@example.com"}).content.decode()
    for name in ("topic", "answer_date", "sender_name"):
        assert f'name="{name}"' in page
    fields = {"to": "ada@example.com", "topic": "exports", "answer_date": "", "sender_name": "Sam"}
    refused = editor_client.post(compose, {**fields, "action": "send"})
    assert refused.status_code == 400
    assert "Fill in “answer_date”." in refused.content.decode()
    assert smtp_server.envelopes == []
    fields["answer_date"] = "Friday"
    preview = editor_client.post(compose, {**fields, "action": "preview"})
    assert "Re: exports" in preview.content.decode()
    assert smtp_server.envelopes == [] and not SentReply.objects.exists()
    sent = editor_client.post(compose, {**fields, "action": "send"})
    assert sent.status_code == 302
    assert len(smtp_server.envelopes) == 1
    reply = SentReply.objects.get()
    assert reply.subscriber == subscriber
    timeline = editor_client.get(
        reverse("templates_app:sent_replies"), {"subscriber": subscriber.pk}
    )
    assert "Re: exports" in timeline.content.decode()


def test_a_mail_server_failure_is_reported_and_nothing_is_recorded(
    editor_client, canned_reply, settings
):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port, 5
    compose = reverse("templates_app:reply_compose", args=[canned_reply.pk])
    fields = {"to": "a@example.org", "topic": "x", "answer_date": "Friday", "sender_name": "Sam"}
    response = editor_client.post(compose, {**fields, "action": "send"})
    assert response.status_code == 400
    assert "The mail server did not accept the message" in response.content.decode()
    assert 'value="Friday"' in response.content.decode()
    assert not SentReply.objects.exists()


def test_a_starter_is_used_by_duplicating_it(editor_client, newsletter):
    response = editor_client.post(reverse("templates_app:duplicate", args=[newsletter.pk]))
    copy = Template.objects.get(name="March news (copy)")
    assert response.status_code == 302
    assert (copy.html_body, copy.layout, copy.current_version) == (
        newsletter.html_body,
        newsletter.layout,
        1,
    )


def test_only_admins_delete_templates(editor_client, admin_user, newsletter):
    delete = reverse("templates_app:delete", args=[newsletter.pk])
    assert editor_client.post(delete).status_code == 403
    editor_client.force_login(admin_user)
    assert editor_client.get(delete).status_code == 405
    assert editor_client.post(delete).status_code == 302
    assert not Template.objects.filter(pk=newsletter.pk).exists()
