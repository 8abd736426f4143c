import html
import json
import re

import pytest
from django.db import connection
from django.urls import reverse

from tests.support.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

PRO = {"match": "all", "conditions": [{"field": "attr.plan", "op": "eq", "value": "pro"}]}


@pytest.fixture
def big_list(custom_fields):
    """200,000 subscribers, one in four on the pro plan, written set-based and analyzed.

    Its tests are transactional: the flush after each truncates the table. Rolled back instead,
    the rows would leave 25 MB of dead pages and the 200,000 of ANALYZE's in-place statistics
    to the tests after it, whose few live rows would then be sampled rather than counted."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO subscribers_subscriber (email, first_name, last_name, attributes, status,
                source, source_detail, language, timezone, created_at, updated_at)
            SELECT 'n' || g || '@example.com', '', '',
                   jsonb_build_object('plan', CASE WHEN g % 4 = 0 THEN 'pro' ELSE 'free' END),
                   'active', 'import', '', 'en', '', now(), now()
            FROM generate_series(1, 200000) g
            """
        )
        cursor.execute("ANALYZE subscribers_subscriber")


def count(client, rules, **extra):
    response = client.post(
        reverse("subscribers:segment_count"), {"rules": json.dumps(rules), **extra}
    )
    assert response.status_code == 200
    return response.content.decode()


def strong_number(text: str) -> int:
    return int(re.search(r"<strong>([\d,]+)</strong>", text)[1].replace(",", ""))


def test_a_small_list_is_counted_exactly_at_once(editor_client, custom_fields):
    SubscriberFactory(attributes={"plan": "pro"})
    SubscriberFactory(attributes={"plan": "free"})
    answer = count(editor_client, PRO)
    assert answer == "<strong>1</strong> subscriber matches"


@pytest.mark.django_db(transaction=True)
def test_past_the_live_budget_it_says_about_and_asks_for_the_exact_count(
    editor_client, big_list, settings
):
    settings.SEGMENT_COUNT_LIVE_MS = 1  # no exact count of 200,000 rows fits in a millisecond
    answer = count(editor_client, PRO)
    assert answer.startswith("<span hx-post=") and "about <strong>" in answer
    assert 'hx-trigger="load"' in answer and "counting exactly" in answer
    # A sample of the table, scaled up: near the 50,000 pro subscribers.
    assert 40_000 <= strong_number(answer) <= 60_000
    # The follow-up the page sends by itself: the exact count replaces the estimate.
    follow_up = json.loads(html.unescape(re.search(r"hx-vals='([^']*)'", answer)[1]))
    assert follow_up["exact"] == "1" and json.loads(follow_up["rules"]) == PRO
    exact = count(editor_client, json.loads(follow_up["rules"]), exact=follow_up["exact"])
    assert exact == "<strong>50,000</strong> subscribers match"


@pytest.mark.django_db(transaction=True)
def test_an_exact_count_over_its_budget_keeps_the_estimate_and_says_so(
    editor_client, big_list, settings
):
    settings.SEGMENT_COUNT_EXACT_MS = 1
    answer = count(editor_client, PRO, exact="1")
    assert answer.startswith("about <strong>") and "too many to count exactly" in answer
    assert "hx-post" not in answer
    # The budget did not outlive the count: the next statement in this transaction runs.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM subscribers_subscriber, generate_series(1, 5)")
        assert cursor.fetchone()[0] == 1_000_000
