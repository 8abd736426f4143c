import pytest
from django.conf import settings as django_settings
from django.test import Client
from playwright.sync_api import sync_playwright

from core.roles import Role
from templates_app.services import template_create
from tests.support.browser import launch
from tests.support.factories import (
    LayoutFactory,
    UserFactory,
)

LAYOUT = (
    "<html><body>{{ content }}<p>{{ company_postal_address }}"
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
)


@pytest.fixture
def live_editor(transactional_db, role_groups):
    return UserFactory(username="live-editor", password="x", role=Role.EDITOR)


@pytest.mark.browser
def test_the_editor_lints_live_as_the_marketer_types(live_server, live_editor):
    template = template_create(
        kind="newsletter",
        name="Live",
        subject="Live news",
        preheader="p",
        html_body="<p>Hello</p>",
        layout=LayoutFactory(html=LAYOUT),
    )
    client = Client()
    client.force_login(live_editor)
    session_cookie = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    url = f"{live_server.url}/templates/{template.pk}/"
    with sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context()
            context.add_cookies(
                [
                    {
                        "name": django_settings.SESSION_COOKIE_NAME,
                        "value": session_cookie,
                        "url": live_server.url,
                    }
                ]
            )
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("text=No problems found.")
            page.fill("#id_html_body", "<p>Dear [Your name],</p>\n<p>{{ frist_name }}</p>")
            page.wait_for_selector('.lint-finding[data-code="placeholder"]', timeout=10_000)
            findings = page.locator(".lint-finding").all_inner_texts()
            assert any("'[Your name]'" in f and "line 1, column 9" in f for f in findings)
            assert any("{{ frist_name }}" in f and "line 2, column 4" in f for f in findings)
            page.fill("#id_html_body", '<p>Dear {{ first_name|default:"friend" }},</p>')
            page.wait_for_selector("text=No problems found.", timeout=10_000)
        finally:
            browser.close()
