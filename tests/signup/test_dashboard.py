import json

from django.core.files.uploadedfile import SimpleUploadedFile

from signup.models import FormView, LeadMagnet, Signup, SignupForm
from signup.services import Origin, form_view_count
from subscribers.models import Subscriber
from tests.support.signup import post_step

VALID_STEPS = [
    {"title": "", "fields": [{"kind": "email"}, {"kind": "consent", "required": True}]},
    {
        "title": "More",
        "fields": [
            {"kind": "first_name", "label": "Your first name", "help_text": "So we can greet you"},
            {"kind": "hidden", "key": "utm_medium", "param": "utm_medium"},
        ],
    },
]


def _builder_post(**overrides):
    data = {
        "name": "Footer form",
        "language": "en",
        "is_active": "on",
        "double_opt_in": "on",
        "consent_text": "Yes, email me.",
        "consent_version": "1",
        "success_action": "message",
        "success_message": "",
        "redirect_url": "",
        "allowed_origins": "https://www.example.com/\n*",
        "min_fill_seconds": "3",
        "steps_json": json.dumps(VALID_STEPS),
        "primary_color": "#123456",
        "background_color": "#ffffff",
        "text_color": "#000000",
        "font_family": "Georgia, serif",
        "button_text": "Join us",
        "border_radius": "12",
    }
    data.update(overrides)
    return data


def test_the_forms_link_lists_forms(viewer_client, signup_form):
    response = viewer_client.get("/forms/")
    assert response.status_code == 200
    assert b"Newsletter" in response.content


def test_an_editor_builds_a_two_step_form(editor_client, topics):
    response = editor_client.post("/forms/new/", _builder_post(topics=[topics[0].pk]))
    assert response.status_code == 302, response.context["form"].errors
    form = SignupForm.objects.get()
    assert form.steps[1]["fields"][0]["label"] == "Your first name"
    assert form.steps[0]["fields"][0]["required"] is True
    assert form.theme["primary_color"] == "#123456" and form.theme["border_radius"] == 12
    assert form.origins == ["https://www.example.com", "*"]
    assert form.double_opt_in is True
    assert list(form.topics.all()) == [topics[0]]
    page = editor_client.get(f"/forms/{form.pk}/")
    snippet = page.context["snippet"]
    assert f'data-nofailmail-form="{form.public_id}"' in snippet
    assert f"/forms/f/{form.public_id}/frame/" in snippet and "<noscript><iframe" in snippet
    assert b"embed-snippet" in page.content


def test_the_builder_explains_what_is_wrong_and_keeps_the_input(editor_client):
    steps = [{"title": "", "fields": [{"kind": "first_name"}]}, {"fields": []}]
    response = editor_client.post(
        "/forms/new/",
        _builder_post(
            steps_json=json.dumps(steps),
            allowed_origins="www.example.com",
            primary_color="red;}body{",
        ),
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "Step 1 must ask for the email address." in errors["steps_json"]
    assert "Step 2 has no field." in errors["steps_json"]
    assert "Not an origin" in errors["allowed_origins"][0]
    assert "primary_color" in errors
    assert response.context["form"]["name"].value() == "Footer form"
    assert not SignupForm.objects.exists()


def test_an_attribute_field_must_name_an_existing_custom_field(editor_client):
    steps = [{"fields": [{"kind": "email"}, {"kind": "attribute", "key": "nope"}]}]
    response = editor_client.post("/forms/new/", _builder_post(steps_json=json.dumps(steps)))
    assert (
        "Step 1, field 2: there is no custom field 'nope'."
        in response.context["form"].errors["steps_json"]
    )


def test_a_viewer_cannot_build_or_delete_forms(viewer_client, signup_form):
    assert viewer_client.get("/forms/new/").status_code == 403
    assert viewer_client.post("/forms/new/", _builder_post()).status_code == 403
    assert viewer_client.post(f"/forms/{signup_form.pk}/edit/", _builder_post()).status_code == 403
    assert viewer_client.post(f"/forms/{signup_form.pk}/delete/").status_code == 403
    assert viewer_client.get(f"/forms/{signup_form.pk}/").status_code == 200


def test_an_admin_deletes_a_form_and_its_subscribers_stay(admin_client, signup_form, client):
    post_step(client, signup_form, email="ada@example.com", consent="1")
    assert admin_client.post(f"/forms/{signup_form.pk}/delete/").status_code == 302
    assert not SignupForm.objects.exists()
    assert Subscriber.objects.count() == 1


def test_the_stats_show_the_funnel_confirmations_and_sources(
    viewer_client, client, signup_form, eager
):
    for _ in range(4):
        form_view_count(form=signup_form, origin=Origin(page="https://shop.example/a"))
    form_view_count(form=signup_form, origin=Origin(page="https://shop.example/b", utm_source="x"))
    first = post_step(
        client, signup_form, email="a@example.com", consent="1", page="https://shop.example/a"
    ).json()
    post_step(client, signup_form, step=1, signup=first["signup"], first_name="A")
    post_step(
        client, signup_form, email="b@example.com", consent="1", page="https://shop.example/a"
    )
    Signup.objects.filter(subscriber__email="a@example.com").update(
        confirmed_at="2026-01-01T00:00Z"
    )
    assert FormView.objects.get(source_page="https://shop.example/a").count == 4

    response = viewer_client.get(f"/forms/{signup_form.pk}/")
    stats = response.context["stats"]
    assert stats["views"] == 5
    assert stats["step_counts"] == [2, 1]
    assert stats["confirmed"] == 1
    assert stats["conversion"] == 20.0  # 1 confirmed of 5 views
    assert stats["funnel"] == [("Views", 5), ("Step 1", 2), ("Step 2", 1), ("Confirmed", 1)]
    page_a = next(s for s in stats["sources"] if s["source_page"] == "https://shop.example/a")
    assert (page_a["views"], page_a["step_1"], page_a["confirmed"]) == (4, 2, 1)
    assert b"chart.umd.min.js" in response.content and b"funnel-chart" in response.content


def test_views_are_counted_with_their_page_and_utm(client, signup_form):
    client.get(
        f"/forms/f/{signup_form.public_id}/config.json",
        {"page": "https://shop.example/p?utm_source=news&utm_medium=email&x=1"},
        HTTP_ORIGIN="https://shop.example",
    )
    client.get(f"/forms/f/{signup_form.public_id}/", {"utm_campaign": "spring"})
    rows = FormView.objects.order_by("id").values_list(
        "source_page", "utm_source", "utm_medium", "utm_campaign", "count"
    )
    assert list(rows) == [
        ("https://shop.example/p", "news", "email", "", 1),
        ("", "", "", "spring", 1),
    ]


def test_an_editor_uploads_a_lead_magnet_and_a_too_big_file_is_refused(
    editor_client, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    settings.SIGNUP_LEAD_MAGNET_MAX_MB = 1
    ok = editor_client.post(
        "/forms/lead-magnets/new/",
        {
            "name": "Guide",
            "link_hours": "48",
            "file": SimpleUploadedFile("guide.pdf", b"%PDF-1.4 guide", "application/pdf"),
        },
    )
    assert ok.status_code == 302
    magnet = LeadMagnet.objects.get()
    assert magnet.file.read() == b"%PDF-1.4 guide"
    big = editor_client.post(
        "/forms/lead-magnets/new/",
        {
            "name": "Huge",
            "link_hours": "48",
            "file": SimpleUploadedFile("huge.pdf", b"x" * (1024 * 1024 + 1), "application/pdf"),
        },
    )
    assert big.status_code == 200
    assert "larger than 1 MB" in str(big.context["upload_form"].errors)
    neither = editor_client.post("/forms/lead-magnets/new/", {"name": "Empty", "link_hours": "1"})
    assert "Upload a file or give its URL." in str(neither.context["upload_form"].errors)
    assert LeadMagnet.objects.count() == 1
    assert editor_client.get("/forms/lead-magnets/").status_code == 200
