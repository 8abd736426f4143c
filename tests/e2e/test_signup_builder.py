"""The form builder and the stats page in a real browser."""

import pytest
from django.conf import settings as django_settings
from django.test import Client

from core.roles import Role
from signup.models import SignupForm
from tests.e2e.test_signup_embed import browser  # noqa: F401 - the fixture
from tests.support.browser import wait_until
from tests.support.factories import (
    FormViewFactory,
    SignupFormFactory,
    TopicFactory,
    UserFactory,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def editor_page(live_server, transactional_db, role_groups, browser):  # noqa: F811
    user = UserFactory(username="form-editor", password="x", role=Role.EDITOR)
    client = Client()
    client.force_login(user)
    context = browser.new_context()
    context.add_cookies(
        [
            {
                "name": django_settings.SESSION_COOKIE_NAME,
                "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    yield context.new_page()
    context.close()


def test_a_marketer_builds_a_three_step_form_with_the_builder(live_server, editor_page):
    TopicFactory(name="Weekly", slug="weekly")
    page = editor_page
    page.goto(f"{live_server.url}/forms/new/")
    # The JSON textarea is replaced by the builder: two steps to start with.
    assert not page.locator("#id_steps_json").is_visible()
    assert page.locator("#builder [data-step]").count() == 2
    page.fill("#id_name", "Built in the browser")

    step2 = page.locator('#builder [data-step="2"]')
    step2.get_by_role("button", name="+ Field").click()
    new_field = step2.locator("[data-field]").nth(1)
    new_field.locator("select").select_option("hidden")
    new_field = step2.locator('[data-field="hidden"]')
    new_field.get_by_placeholder("key (e.g. utm_source, source)").fill("utm_source")
    new_field.get_by_placeholder("from URL parameter (optional)").fill("utm_source")

    page.locator("#builder").get_by_role("button", name="+ Step").click()
    step3 = page.locator('#builder [data-step="3"]')
    step3.locator("[data-field] select").first.select_option("consent")
    step3.get_by_placeholder("label (default in the form's language)").fill("Yes, email me")
    page.locator("#id_topics_0").check()
    page.get_by_role("button", name="Save form").click()
    page.wait_for_url("**/forms/*/")

    form = SignupForm.objects.get()
    assert [len(step["fields"]) for step in form.steps] == [1, 2, 1]
    assert form.steps[1]["fields"][1] == {
        "kind": "hidden",
        "label": "",
        "help_text": "",
        "placeholder": "",
        "required": False,
        "key": "utm_source",
        "param": "utm_source",
        "value": "",
    }
    assert form.steps[2]["fields"][0]["kind"] == "consent"
    assert form.steps[2]["fields"][0]["label"] == "Yes, email me"
    assert form.double_opt_in is True  # on by default
    assert "data-nofailmail-form" in page.locator("#embed-snippet").input_value()


def test_the_stats_page_draws_the_funnel_chart(live_server, editor_page):
    form = SignupFormFactory(
        name="Charted", steps=[{"title": "", "fields": [{"kind": "email", "required": True}]}]
    )
    FormViewFactory(form=form, day="2026-11-01", count=12)
    page = editor_page
    page.goto(f"{live_server.url}/forms/{form.pk}/")
    wait_until(page, "!!(window.Chart && Chart.getChart('funnel-chart'))")
    labels = page.evaluate("() => Chart.getChart('funnel-chart').data.labels")
    values = page.evaluate("() => Chart.getChart('funnel-chart').data.datasets[0].data")
    assert labels == ["Views", "Step 1", "Confirmed"]
    assert values == [12, 0, 0]


def test_the_builder_previews_the_form_live_and_the_snippet_copies(live_server, editor_page):
    page = editor_page
    page.goto(f"{live_server.url}/forms/new/")
    preview = page.frame_locator("#form-preview")
    # The unsaved form, every step: step 1's email box is there before anything is typed.
    preview.locator("[data-preview-step='1'] input[name=email]").wait_for(timeout=15000)
    assert preview.locator("[data-preview-step]").count() == 2
    page.fill("#id_button_text", "Count me in")
    preview.get_by_role("button", name="Count me in").wait_for(timeout=15000)
    # A field added in the builder shows up in the preview.
    step2 = page.locator('#builder [data-step="2"]')
    step2.get_by_role("button", name="+ Field").click()
    step2.locator("[data-field]").nth(1).locator("select").select_option("last_name")
    preview.locator("[data-preview-step='2'] input[name=last_name]").wait_for(timeout=15000)
    assert not SignupForm.objects.exists()  # previewing saves nothing

    page.fill("#id_name", "Copied")
    page.get_by_role("button", name="Save form").click()
    page.wait_for_url("**/forms/*/")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page.get_by_role("button", name="Copy the snippet").click()
    page.get_by_role("button", name="Copied").wait_for(timeout=5000)
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == page.locator("#embed-snippet").input_value()
    assert "data-nofailmail-form" in copied
