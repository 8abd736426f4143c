"""With the Content-Security-Policy on, the main pages run in chromium without one violation:
inline scripts carry the nonce, confirmations work without inline handlers, htmx needs no
eval, charts draw."""

import pytest

from core.recipient_links import preferences_path
from core.roles import Role
from subscribers.models import Segment
from subscribers.services import subscriber_create
from tests.support.browser import launch, wait_until
from tests.support.factories import (
    SegmentFactory,
    SignupFormFactory,
    TopicFactory,
    UserFactory,
    create_sent_campaign,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI} at ${where}`);
});
"""


@pytest.fixture(autouse=True)
def short_lived_connections(monkeypatch):
    from django.db import connections

    monkeypatch.setitem(connections["default"].settings_dict, "CONN_MAX_AGE", 0)


@pytest.fixture
def page(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        page.add_init_script(LISTEN)
        page.console_csp = []
        page.on(
            "console",
            lambda m: "Content Security Policy" in m.text and page.console_csp.append(m.text),
        )
        yield page
        browser.close()


@pytest.fixture
def data(transactional_db):
    UserFactory(username="csp-admin", password="pw-csp-admin-42", role=Role.ADMIN)
    topic = TopicFactory(name="Weekly", slug="weekly")
    ann = subscriber_create(email="ann@example.com", status="active", topics=[topic])
    segment = SegmentFactory(name="Doomed", rules={"match": "all", "conditions": []})
    form = SignupFormFactory(
        name="Newsletter", steps=[{"title": "", "fields": [{"kind": "email", "required": True}]}]
    )
    campaign = create_sent_campaign()[0]
    return {"segment": segment, "form": form, "campaign": campaign, "ann": ann}


def _visit(page, url):
    response = page.goto(url)
    assert response.status < 400, url
    policy = response.headers["content-security-policy"]
    script_src = next(d for d in policy.split("; ") if d.startswith("script-src "))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src, url
    page.wait_for_load_state("networkidle")
    violations = page.evaluate("window.__csp") + page.console_csp
    assert violations == [], (url, violations)


def test_the_main_pages_run_under_the_policy_without_a_violation(page, live_server, data):
    base = live_server.url
    _visit(page, f"{base}/login/")
    page.fill("input[name=username]", "csp-admin")
    page.fill("input[name=password]", "pw-csp-admin-42")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    campaign, form = data["campaign"], data["form"]
    for path in [
        "/",
        "/subscribers/",
        "/subscribers/segments/",
        "/subscribers/import/",
        "/campaigns/",
        f"/campaigns/{campaign.pk}/",
        "/campaigns/sandbox/",
        "/templates/",
        "/forms/",
        f"/forms/{form.pk}/",
        f"/forms/{form.pk}/edit/",
        "/analytics/",
        "/leaving/",
        "/settings/",
        f"/forms/f/{form.public_id}/",  # the visitor's hosted page
        preferences_path(subscriber_id=data["ann"].pk),  # the recipient's preference center
    ]:
        _visit(page, base + path)
    # The charts' script (inline, with the nonce) ran.
    _visit(page, f"{base}/analytics/")
    assert page.evaluate("!!Chart.getChart('growth-chart')")
    _visit(page, f"{base}/analytics/campaigns/{campaign.pk}/")
    # The segment builder (inline, with the nonce) draws and counts live through htmx.
    _visit(page, f"{base}/subscribers/segments/new")
    page.click("text=+ condition")
    wait_until(page, "document.getElementById('segment-count').textContent.trim() !== '…'")
    assert page.evaluate("window.__csp") + page.console_csp == []


def test_a_confirmation_asks_without_an_inline_handler(page, live_server, data):
    base = live_server.url
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", "csp-admin")
    page.fill("input[name=password]", "pw-csp-admin-42")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    _visit(page, f"{base}/subscribers/segments/")
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("form[data-confirm] button")
    page.wait_for_timeout(300)
    assert asked == ["Delete this segment?"]
    assert Segment.objects.filter(pk=data["segment"].pk).exists()  # dismissed: nothing sent
    page.once("dialog", lambda d: d.accept())
    with page.expect_navigation():
        page.click("form[data-confirm] button")
    assert not Segment.objects.filter(pk=data["segment"].pk).exists()
    assert page.evaluate("window.__csp") + page.console_csp == []
