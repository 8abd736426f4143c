"""The segment rule builder and the import progress in Debian's chromium."""

import json

import pytest

from core.roles import Role
from subscribers.models import Segment
from subscribers.services import subscriber_create
from tests.support.browser import launch, wait_until
from tests.support.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def short_lived_connections(monkeypatch):
    # The live server thread must not keep a connection open past the test: it would stop the
    # test database from being dropped at the end of the session.
    from django.db import connections

    monkeypatch.setitem(connections["default"].settings_dict, "CONN_MAX_AGE", 0)


@pytest.fixture
def browser_page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls in the test are
    # still synchronous. Scoped to the test so that no subprocess inherits it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        yield page
        browser.close()


@pytest.fixture
def editor(transactional_db, role_groups, django_user_model):
    return UserFactory(username="eddie", password="pw-eddie-123", role=Role.EDITOR)


def login(page, live_server):
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "eddie")
    page.fill("input[name=password]", "pw-eddie-123")
    page.click("button[type=submit], input[type=submit]")


def test_the_rule_builder_counts_live_and_saves_nested_rules(
    browser_page, live_server, editor, topics
):
    subscriber_create(email="ann@example.com", status="active", topics=[topics[0]])
    subscriber_create(email="bob@example.com", status="active", topics=[topics[1]])
    subscriber_create(email="cat@example.com", status="unsubscribed", topics=[topics[0]])
    page = browser_page
    login(page, live_server)
    page.goto(f"{live_server.url}/subscribers/segments/new")
    page.fill("input[name=name]", "Active weekly readers")
    page.get_by_text("+ condition").first.click()
    page.locator(".condition").first.get_by_label("Value").select_option("active")
    wait_until(
        page, "document.getElementById('segment-count').textContent.includes('2 subscriber')"
    )
    page.get_by_text("+ group").click()
    group = page.locator(".group .group")
    group.get_by_text("+ condition").click()
    group.get_by_label("Field").select_option("topic")
    group.get_by_label("Value").select_option("weekly")
    wait_until(
        page, "document.getElementById('segment-count').textContent.includes('1 subscriber')"
    )
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url("**/subscribers/segments/")
    rules = Segment.objects.get().rules
    assert rules["conditions"][0] == {"field": "status", "op": "eq", "value": "active"}
    assert rules["conditions"][1]["conditions"] == [
        {"field": "topic", "op": "in", "value": "weekly"}
    ]
    assert json.dumps(rules)


def test_ticking_the_page_offers_every_matching_subscriber_and_confirms_the_number(
    browser_page, live_server, editor, topics
):
    from subscribers.services import is_suppressed

    for i in range(60):
        subscriber_create(email=f"p{i:03d}@example.com", status="active")
    page = browser_page
    login(page, live_server)
    page.goto(f"{live_server.url}/subscribers/")
    assert page.locator("#subscriber-total").inner_text().strip() == "60 subscribers"
    assert not page.get_by_text("Select all 60 matching").is_visible()
    page.get_by_label("Tick every subscriber on this page").check()
    assert page.locator("input[data-row]:checked").count() == 50
    page.get_by_text("Select all 60 matching").click()
    assert page.get_by_label("Apply to").input_value() == "all"
    assert page.get_by_text("All 60 matching subscribers are chosen.").is_visible()
    page.get_by_label("Bulk action", exact=True).select_option("suppress")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_selector("#bulk-confirm-text")
    assert "Suppress 60 subscribers?" in page.locator("h1").inner_text()
    assert not is_suppressed("p000@example.com")
    page.get_by_role("button", name="Suppress 60 subscribers").click()
    page.wait_for_selector("#subscriber-total")
    assert "60 addresses suppressed." in page.content()
    assert is_suppressed("p000@example.com") and is_suppressed("p059@example.com")
