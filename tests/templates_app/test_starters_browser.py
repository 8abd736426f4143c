import pytest
from playwright.sync_api import sync_playwright

from templates_app import demo
from templates_app.fields import SAMPLE_CONTEXT
from templates_app.models import Template
from templates_app.rendering import compile_version
from templates_app.selectors import current_version
from tests.support.browser import launch


@pytest.mark.browser
@pytest.mark.django_db
@pytest.mark.parametrize("width", [375, 600, 1024])
def test_the_newsletter_starters_never_scroll_sideways(settings, tmp_path, width):
    settings.MEDIA_ROOT = tmp_path
    settings.SITE_URL = "https://mail.example.com"
    demo.load()
    # Render before the browser starts: Playwright's sync API runs an event loop, and Django
    # refuses database access while one is running.
    context = {**SAMPLE_CONTEXT, "first_name": "Maximiliana-Konstantina", "attr": {}}
    rendered = {
        t.name: compile_version(current_version(t)).render(context).html
        for t in Template.objects.filter(kind="newsletter")
    }
    assert len(rendered) == 3
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": width, "height": 800})
            # No network: the hero image fails to load, which is also how many inboxes show it.
            page.route("**/*", lambda route: route.abort())
            for name, html in rendered.items():
                page.set_content(html, wait_until="domcontentloaded")
                scroll_width, client_width = page.evaluate(
                    "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
                )
                assert scroll_width <= client_width, (name, scroll_width, client_width)
                container = page.evaluate(
                    "document.querySelector('.container').getBoundingClientRect().width"
                )
                assert container <= min(width, 600), (name, container)
            # Dark mode: the layout's prefers-color-scheme rules beat the inlined light colours.
            page.emulate_media(color_scheme="dark")
            for name, html in rendered.items():
                page.set_content(html, wait_until="domcontentloaded")
                background, colour = page.evaluate(
                    "[getComputedStyle(document.querySelector('.container')).backgroundColor,"
                    " getComputedStyle(document.querySelector('.content')).color]"
                )
                assert (background, colour) == ("rgb(31, 41, 55)", "rgb(243, 244, 246)"), name
        finally:
            browser.close()
