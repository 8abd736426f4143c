import datetime as dt

import pytest
from django.utils import timezone

from subscribers.models import Subscriber
from subscribers.segments import SegmentRuleError, register_condition, rules_q, segment_queryset
from tests.support.factories import SegmentFactory, SubscriberFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


def emails(rules) -> set[str]:
    return set(Subscriber.objects.filter(rules_q(rules)).values_list("email", flat=True))


def one(field, op, value):
    return {"match": "all", "conditions": [{"field": field, "op": op, "value": value}]}


@pytest.fixture
def people(topics, custom_fields):
    weekly, product, _ = topics
    now = timezone.now()
    ann = SubscriberFactory(
        email="ann@acme.com",
        first_name="Ann",
        status="active",
        source="form",
        source_detail="footer",
        attributes={"company": "Acme", "score": 10, "birthday": "1990-05-01", "vip": True,
                    "plan": "pro"},
        confirmed_at=now,
    )  # fmt: skip
    bob = SubscriberFactory(
        email="bob@globex.com",
        status="unsubscribed",
        source="import",
        attributes={"company": "Globex", "score": 3, "birthday": "2001-01-01", "vip": False,
                    "plan": "free"},
    )  # fmt: skip
    cat = SubscriberFactory(email="cat@acme.com", status="active", attributes={})
    Subscriber.objects.filter(pk=cat.pk).update(created_at=now - dt.timedelta(days=200))
    SubscriptionFactory(subscriber=ann, topic=weekly)
    SubscriptionFactory(subscriber=bob, topic=weekly, status="unsubscribed")
    SubscriptionFactory(subscriber=cat, topic=product)
    return ann, bob, cat


def test_status_operators(people):
    assert emails(one("status", "eq", "active")) == {"ann@acme.com", "cat@acme.com"}
    assert emails(one("status", "neq", "active")) == {"bob@globex.com"}
    assert emails(one("status", "in", ["unsubscribed", "bounced"])) == {"bob@globex.com"}


def test_topic_membership_counts_only_active_subscriptions(people):
    assert emails(one("topic", "in", "weekly")) == {"ann@acme.com"}
    assert emails(one("topic", "in", ["weekly", "product"])) == {"ann@acme.com", "cat@acme.com"}
    assert emails(one("topic", "not_in", "weekly")) == {"bob@globex.com", "cat@acme.com"}


def test_source_and_signup_form(people):
    assert emails(one("source", "eq", "import")) == {"bob@globex.com"}
    assert emails(one("source", "neq", "import")) == {"ann@acme.com", "cat@acme.com"}
    assert emails(one("signup_form", "eq", "footer")) == {"ann@acme.com"}


def test_string_fields(people):
    assert emails(one("email", "ends_with", "@acme.com")) == {"ann@acme.com", "cat@acme.com"}
    assert emails(one("email", "contains", "GLOBEX")) == {"bob@globex.com"}
    assert emails(one("first_name", "eq", "ann")) == {"ann@acme.com"}
    assert emails(one("first_name", "is_set", True)) == {"ann@acme.com"}
    assert emails(one("first_name", "is_set", False)) == {"bob@globex.com", "cat@acme.com"}


def test_dates_absolute_and_relative(people):
    today = timezone.localdate()
    assert emails(one("created_at", "within_days", 90)) == {"ann@acme.com", "bob@globex.com"}
    old = (today - dt.timedelta(days=100)).isoformat()
    assert emails(one("created_at", "before", old)) == {"cat@acme.com"}
    assert emails(one("created_at", "after", old)) == {"ann@acme.com", "bob@globex.com"}
    assert emails(one("confirmed_at", "is_set", True)) == {"ann@acme.com"}


def test_text_attribute_operators(people):
    assert emails(one("attr.company", "eq", "acme")) == {"ann@acme.com"}
    assert emails(one("attr.company", "contains", "LOB")) == {"bob@globex.com"}
    assert emails(one("attr.company", "neq", "Acme")) == {"bob@globex.com", "cat@acme.com"}
    assert emails(one("attr.company", "is_set", True)) == {"ann@acme.com", "bob@globex.com"}
    assert emails(one("attr.company", "is_set", False)) == {"cat@acme.com"}


def test_number_attribute_operators(people):
    assert emails(one("attr.score", "gt", 5)) == {"ann@acme.com"}
    assert emails(one("attr.score", "lte", "3")) == {"bob@globex.com"}
    assert emails(one("attr.score", "eq", 10)) == {"ann@acme.com"}
    assert emails(one("attr.score", "gte", 3)) == {"ann@acme.com", "bob@globex.com"}
    assert emails(one("attr.score", "lt", 100)) == {"ann@acme.com", "bob@globex.com"}


def test_date_boolean_and_choice_attributes(people):
    assert emails(one("attr.birthday", "before", "1995-01-01")) == {"ann@acme.com"}
    assert emails(one("attr.birthday", "after", "1995-01-01")) == {"bob@globex.com"}
    assert emails(one("attr.birthday", "eq", "2001-01-01")) == {"bob@globex.com"}
    assert emails(one("attr.vip", "eq", True)) == {"ann@acme.com"}
    assert emails(one("attr.vip", "eq", "false")) == {"bob@globex.com"}
    assert emails(one("attr.plan", "in", ["pro", "team"])) == {"ann@acme.com"}
    assert emails(one("attr.plan", "neq", "pro")) == {"bob@globex.com", "cat@acme.com"}


def test_nested_groups_combine_and_with_or(people):
    rules = {
        "match": "all",
        "conditions": [
            {"field": "status", "op": "eq", "value": "active"},
            {
                "match": "any",
                "conditions": [
                    {"field": "topic", "op": "in", "value": "product"},
                    {"field": "attr.score", "op": "gt", "value": 5},
                ],
            },
        ],
    }
    assert emails(rules) == {"ann@acme.com", "cat@acme.com"}
    rules["conditions"][1]["conditions"].pop(0)
    assert emails(rules) == {"ann@acme.com"}


def test_a_segment_compiles_to_one_query(people, django_assert_num_queries):
    segment = SegmentFactory(name="s", rules=one("topic", "in", "weekly"))
    queryset = segment_queryset(segment)
    with django_assert_num_queries(1):
        assert queryset.count() == 1


def test_an_empty_rule_set_matches_everyone(people):
    assert len(emails({"match": "all", "conditions": []})) == 3


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "status", "op": "eq", "value": "nonsense"},
        {"field": "attr.score", "op": "contains", "value": "1"},
        {"field": "attr.score", "op": "gt", "value": "lots"},
        {"field": "attr.unknown", "op": "eq", "value": "x"},
        {"field": "created_at", "op": "before", "value": "yesterday"},
        {"field": "created_at", "op": "within_days", "value": -3},
        {"field": "nope", "op": "eq", "value": 1},
        {"field": "engagement", "op": "opened_within", "value": 30},
    ],
)
def test_bad_rules_raise_a_clear_error(people, condition):
    with pytest.raises(SegmentRuleError):
        rules_q({"match": "all", "conditions": [condition]})


def test_groups_nest_at_most_three_levels(db):
    deep = {"match": "all", "conditions": []}
    node = deep
    for _ in range(4):
        child = {"match": "any", "conditions": []}
        node["conditions"].append(child)
        node = child
    with pytest.raises(SegmentRuleError):
        rules_q(deep)


def test_engagement_conditions_plug_in_through_register_condition(people, monkeypatch):
    from django.db.models import Q

    from subscribers import segments

    monkeypatch.setattr(segments, "CONDITION_COMPILERS", {})
    register_condition("engagement", lambda c: Q(email__startswith="ann"))
    assert emails(one("engagement", "opened_within", 30)) == {"ann@acme.com"}
