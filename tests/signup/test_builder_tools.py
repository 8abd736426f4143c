"""The form builder's helpers: the live preview of the unsaved form, the snippet's copy button,
and template pickers that offer only the kind of template a signup email can use."""

import json

import lxml.html

from signup.models import SignupForm
from templates_app.models import Template
from templates_app.services import template_create

from .test_dashboard import VALID_STEPS, _builder_post


def test_the_preview_shows_every_step_as_the_builder_has_it_and_saves_nothing(editor_client):
    response = editor_client.post("/forms/preview/", _builder_post(button_text="Count me in"))
    assert response.status_code == 200
    page = lxml.html.fromstring(response.content)
    steps = page.cssselect("[data-preview-step]")
    assert len(steps) == 2
    assert "Step 1 of 2" in steps[0].text_content()
    assert steps[0].cssselect("input[name=email]") and steps[0].cssselect("input[name=consent]")
    assert "Your first name" in steps[1].text_content()
    assert steps[1].cssselect("button")[0].text_content() == "Count me in"
    assert "--nfm-primary: #123456" in response.content.decode()
    # Shown in the builder's iframe (same origin), and not saved.
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert not SignupForm.objects.exists()


def test_a_form_not_named_yet_is_previewed(editor_client):
    response = editor_client.post("/forms/preview/", _builder_post(name=""))
    assert b"data-preview-step" in response.content


def test_the_preview_says_what_to_fix_and_never_fails(editor_client):
    response = editor_client.post("/forms/preview/", _builder_post(steps_json="[{"))
    assert response.status_code == 200
    assert "The preview waits for these to be fixed" in response.content.decode()
    broken = _builder_post(steps_json=json.dumps([{"fields": [{"kind": "nope"}]}]))
    assert editor_client.post("/forms/preview/", broken).status_code == 200
    assert editor_client.post("/forms/preview/", {"name": "\x00"}).status_code == 200


def test_the_preview_is_only_posted(editor_client):
    assert editor_client.get("/forms/preview/").status_code == 405


def test_a_viewer_gets_no_preview(viewer_client):
    assert viewer_client.post("/forms/preview/", _builder_post()).status_code == 403


def test_the_edit_page_has_the_preview_and_the_detail_page_a_copy_button(
    editor_client, signup_form
):
    edit = editor_client.get(f"/forms/{signup_form.pk}/edit/").content.decode()
    assert 'id="form-preview"' in edit and 'data-preview-url="/forms/preview/"' in edit
    detail = lxml.html.fromstring(editor_client.get(f"/forms/{signup_form.pk}/").content)
    (button,) = detail.cssselect("button[data-copy]")
    assert detail.cssselect(button.get("data-copy"))[0].tag == "textarea"
    assert "<script>" not in edit  # the page's code comes from static files (CSP)


def test_the_email_pickers_offer_canned_replies_not_newsletters(editor_client):
    reply = template_create(
        kind=Template.Kind.CANNED_REPLY,
        name="Please confirm",
        language="en",
        subject="Confirm",
        html_body='<p><a href="{{ confirm_url }}">Confirm</a></p>',
    )
    newsletter = template_create(
        kind=Template.Kind.NEWSLETTER,
        name="Monthly letter",
        language="en",
        subject="News",
        html_body='<p>News <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>',
    )
    page = lxml.html.fromstring(editor_client.get("/forms/new/").content)
    for name in ("confirmation_templates", "welcome_templates"):
        offered = {int(v) for v in page.xpath(f'//input[@name="{name}"]/@value')}
        assert offered == {reply.pk}, name
    # A newsletter id posted by hand is refused, not saved.
    response = editor_client.post(
        "/forms/new/",
        _builder_post(steps_json=json.dumps(VALID_STEPS), confirmation_templates=[newsletter.pk]),
    )
    assert response.status_code == 200
    assert not SignupForm.objects.exists()
