"""The interactive docs run in chromium under the site's Content-Security-Policy (Swagger UI
from our own static files, no CDN) and list the operations."""

import pytest

from tests.support.browser import CHROMIUM_ARGS, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI}`);
});
"""


def test_the_docs_render_every_operation_without_a_csp_violation(live_server, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.add_init_script(LISTEN)
        requested = []
        page.on("request", lambda r: requested.append(r.url))
        page.goto(f"{live_server.url}/api/v1/docs")
        wait_until(page, "document.querySelectorAll('.opblock').length > 20")
        text = page.inner_text("body")
        assert "/api/v1/subscribers/upsert" in text and "/api/v1/signups" in text
        assert page.locator("button.authorize").count() == 1
        assert page.evaluate("window.__csp") == []
        assert all(url.startswith(live_server.url) for url in requested), requested
        browser.close()
