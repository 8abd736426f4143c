"""Segment rules compiled to one SQL query.

Rule format (JSON)::

    {"match": "all" | "any", "conditions": [condition | group, ...]}
    condition: {"field": "status", "op": "eq", "value": "active"}
               {"field": "topic", "op": "in", "value": "weekly"}

Only the status and topic conditions exist so far; the full rule builder extends this module.
"""

from django.db.models import Exists, OuterRef, Q, QuerySet

from .models import Segment, Subscriber, Subscription


class SegmentRuleError(ValueError):
    pass


def _condition_q(condition: dict) -> Q:
    if "conditions" in condition:
        return rules_q(condition)
    field, op, value = condition.get("field"), condition.get("op"), condition.get("value")
    if field == "status" and op == "eq":
        return Q(status=value)
    if field == "topic" and op == "in":
        return Q(
            Exists(
                Subscription.objects.filter(
                    subscriber=OuterRef("pk"),
                    topic__slug=value,
                    status=Subscription.Status.ACTIVE,
                )
            )
        )
    raise SegmentRuleError(f"Unsupported condition: {condition!r}")


def rules_q(rules: dict) -> Q:
    conditions = rules.get("conditions") or []
    match = rules.get("match", "all")
    if match not in ("all", "any"):
        raise SegmentRuleError(f"match must be 'all' or 'any', not {match!r}")
    combined = Q()
    for condition in conditions:
        q = _condition_q(condition)
        combined = (combined & q) if match == "all" else (combined | q)
    return combined


def segment_queryset(segment: Segment) -> QuerySet[Subscriber]:
    return Subscriber.objects.filter(rules_q(segment.rules))
