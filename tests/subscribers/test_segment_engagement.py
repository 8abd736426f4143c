"""Engagement conditions in the segment builder (issue 13, item 7c): the list-hygiene page
tells the marketer to build "not engaged in 180 days"; the builder offers it, with the human
opens and clicks counts, the last engagement date and the engagement score, each compiled to
SQL with the rest of the rules and counted live."""

import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from subscribers.models import Segment, Subscriber
from tests.support.browser import wait_until
from tests.support.factories import (
    SubscriberEngagementFactory,
    SubscriberFactory,
)

ENGAGEMENT_FIELDS = {
    "engagement",
    "last_engaged",
    "human_opens",
    "human_clicks",
    "engagement_score",
}


@pytest.fixture
def readers(db):
    """ann engages (recently, often), bob once long ago, cat never (no engagement row)."""
    now = timezone.now()
    ann, bob, cat = (
        SubscriberFactory(email=f"{name}@example.com", status="active")
        for name in ("ann", "bob", "cat")
    )
    SubscriberEngagementFactory(
        subscriber=ann,
        human_opens=5,
        human_clicks=2,
        last_human_open_at=now - timedelta(days=10),
        last_human_click_at=now - timedelta(days=3),
        score=72,
    )
    SubscriberEngagementFactory(
        subscriber=bob, human_opens=1, last_human_open_at=now - timedelta(days=200), score=4
    )
    return ann, bob, cat


@pytest.fixture
def short_lived_connections(monkeypatch):
    # The live server thread must not keep a connection open past the test: it would stop the
    # test database from being dropped at the end of the session.
    from django.db import connections

    monkeypatch.setitem(connections["default"].settings_dict, "CONN_MAX_AGE", 0)


def _count(client, *conditions) -> str:
    """What the builder's live count shows for these conditions (its htmx POST)."""
    rules = {"match": "all", "conditions": list(conditions)}
    response = client.post(reverse("subscribers:segment_count"), {"rules": json.dumps(rules)})
    assert response.status_code == 200
    return re.sub(r"<[^>]+>", "", response.content.decode())


def test_the_builder_offers_the_engagement_conditions(editor_client, readers):
    page = editor_client.get(reverse("subscribers:segment_create"))
    assert page.status_code == 200
    offered = json.loads(
        re.search(
            r'<script id="builder-fields" type="application/json">(.*?)</script>',
            page.content.decode(),
            re.S,
        )[1]
    )
    by_field = {f["field"]: f for f in offered}
    assert set(by_field) >= ENGAGEMENT_FIELDS
    assert by_field["engagement"]["label"] == "Human engagement"
    assert "not_engaged" in by_field["engagement"]["ops"]
    assert by_field["engagement"]["default"] == 180
    # The builder's script names the operator as the hygiene page does.
    assert "not engaged in the last N days" in page.content.decode()


def test_the_hygiene_page_names_a_condition_the_builder_has(viewer_client, readers):
    page = viewer_client.get(reverse("analytics:hygiene")).content.decode()
    assert "Human engagement — not engaged in the last N days" in page
    assert reverse("subscribers:segment_create") in page


def test_not_engaged_in_n_days_counts_live(editor_client, readers):
    not_engaged = {"field": "engagement", "op": "not_engaged", "value": 180}
    assert _count(editor_client, not_engaged) == "2 subscribers match"  # bob and cat
    # The empty box means "ever": only cat never opened nor clicked.
    assert _count(editor_client, {**not_engaged, "value": ""}) == "1 subscriber matches"
    assert (
        _count(editor_client, {"field": "engagement", "op": "engaged", "value": "30"})
        == "1 subscriber matches"
    )


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "human_opens", "op": "gte", "value": 3}, {"ann"}),
        ({"field": "human_opens", "op": "lt", "value": 2}, {"bob", "cat"}),  # no row: 0 opens
        ({"field": "human_opens", "op": "neq", "value": 1}, {"ann", "cat"}),
        ({"field": "human_clicks", "op": "eq", "value": 0}, {"bob", "cat"}),
        ({"field": "human_clicks", "op": "gt", "value": "1"}, {"ann"}),
        ({"field": "engagement_score", "op": "gte", "value": 50}, {"ann"}),
        ({"field": "engagement_score", "op": "lte", "value": 10}, {"bob", "cat"}),
        ({"field": "last_engaged", "op": "within_days", "value": 30}, {"ann"}),
        ({"field": "last_engaged", "op": "within_days", "value": 365}, {"ann", "bob"}),
    ],
)
def test_engagement_numbers_and_dates_select_the_right_people(
    editor_client, readers, condition, expected
):
    n = len(expected)
    assert _count(editor_client, condition) == (
        "1 subscriber matches" if n == 1 else f"{n} subscribers match"
    )
    from subscribers.segments import rules_q

    selected = Subscriber.objects.filter(rules_q({"conditions": [condition]}))
    assert {s.email.split("@")[0] for s in selected} == expected


def test_last_engaged_before_and_after_a_date(editor_client, readers):
    day = (timezone.localdate() - timedelta(days=100)).isoformat()
    before = {"field": "last_engaged", "op": "before", "value": day}
    after = {"field": "last_engaged", "op": "after", "value": day}
    assert _count(editor_client, before) == "1 subscriber matches"  # bob; cat has no date
    assert _count(editor_client, after) == "1 subscriber matches"  # ann


def test_bad_engagement_values_get_a_clear_message_not_a_500(editor_client, readers):
    shown = _count(editor_client, {"field": "human_opens", "op": "gte", "value": "lots"})
    assert "is not a number" in shown
    shown = _count(editor_client, {"field": "last_engaged", "op": "before", "value": "soon"})
    assert "is not a date" in shown
    shown = _count(editor_client, {"field": "engagement_score", "op": "contains", "value": 1})
    assert "compares with one of" in shown


def test_a_segment_with_engagement_rules_is_saved_and_compiles_to_one_query(
    editor_client, readers, django_assert_num_queries
):
    rules = {
        "match": "all",
        "conditions": [
            {"field": "status", "op": "eq", "value": "active"},
            {"field": "engagement", "op": "not_engaged", "value": 180},
            {"field": "human_opens", "op": "lt", "value": 3},
        ],
    }
    response = editor_client.post(
        reverse("subscribers:segment_create"),
        {"name": "Sleepers", "description": "", "rules": json.dumps(rules)},
    )
    assert response.status_code == 302
    segment = Segment.objects.get(name="Sleepers")
    from subscribers.segments import segment_queryset

    with django_assert_num_queries(1):
        emails = sorted(segment_queryset(segment).values_list("email", flat=True))
    assert emails == ["bob@example.com", "cat@example.com"]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_builder_picks_not_engaged_in_180_days_and_counts_it(
    live_server, chromium, editor_user, readers, short_lived_connections
):
    page = chromium.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", editor_user.username)
    page.fill("input[name=password]", "pw-" + editor_user.username)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(f"{live_server.url}/**")
    page.goto(f"{live_server.url}/subscribers/segments/new")
    page.fill("input[name=name]", "Sleepers")
    page.get_by_text("+ condition").first.click()
    condition = page.locator(".condition").first
    condition.get_by_label("Field").select_option(label="Human engagement")
    assert condition.get_by_label("Operator").input_value() == "not_engaged"
    assert condition.get_by_label("Value").input_value() == "180"
    wait_until(
        page, "document.getElementById('segment-count').textContent.includes('2 subscriber')"
    )
    condition.get_by_label("Value").fill("")
    wait_until(
        page, "document.getElementById('segment-count').textContent.includes('1 subscriber')"
    )
    condition.get_by_label("Field").select_option(label="Human opens (all time)")
    condition.get_by_label("Operator").select_option("gte")
    condition.get_by_label("Value").fill("3")
    wait_until(
        page, "document.getElementById('segment-count').textContent.includes('1 subscriber')"
    )
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url("**/subscribers/segments/")
    assert Segment.objects.get().rules["conditions"] == [
        {"field": "human_opens", "op": "gte", "value": 3}
    ]
