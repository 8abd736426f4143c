"""Segment rules compiled to one SQL query, evaluated fresh every time (no cron rebuild).

Rule format (JSON)::

    {"match": "all" | "any", "conditions": [condition | group, ...]}
    group:     {"match": "any", "conditions": [...]}            (nested up to MAX_DEPTH levels)
    condition: {"field": <field>, "op": <op>, "value": <value>}

Fields and their operators:

    status          eq, neq, in                     value: a Subscriber.Status value (or list)
    topic           in, not_in                      value: a topic slug or a list of slugs
    source          eq, neq                         value: a Subscriber.Source value
    signup_form     eq                              value: the form's slug (source_detail)
    email           eq, contains, ends_with
    first_name, last_name, language
                    eq, neq, contains, is_set
    created_at, confirmed_at
                    before, after (ISO date), within_days (N), is_set
    attr.<key>      by the CustomField's type:
                    text    eq, neq, contains, is_set
                    number  eq, neq, gt, gte, lt, lte, is_set
                    date    eq, before, after, within_days, is_set
                    boolean eq (true/false), is_set
                    choice  eq, neq, in, is_set
    engagement, last_engaged, human_opens, human_clicks, engagement_score
                    from the analytics app (human opens and clicks only: "not engaged in 180
                    days", "at least 3 human opens", ...). Apps plug fields in with
                    ``register_condition(field, fn, builder={...})`` where ``fn(condition) -> Q``
                    over Subscriber and ``builder`` is how the segment builder offers it; until
                    then an engagement condition raises SegmentRuleError with a clear message.

``is_set`` takes a boolean value (``false`` means "is not set").
"""

import datetime as dt
from collections.abc import Callable

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from .models import CustomField, Segment, Subscriber, Subscription, Topic

MAX_DEPTH = 3


class SegmentRuleError(ValueError):
    pass


# Later apps add their own condition fields here (analytics: "engagement" and its numbers).
CONDITION_COMPILERS: dict[str, Callable[[dict], Q]] = {}
# What the segment builder offers for them: {"field", "label", "ops", "kind"[, "default"]}.
BUILDER_FIELDS: dict[str, dict] = {}


def register_condition(
    field: str, compiler: Callable[[dict], Q], *, builder: dict | None = None
) -> None:
    CONDITION_COMPILERS[field] = compiler
    if builder is not None:
        BUILDER_FIELDS[field] = {"field": field, **builder}


STRING_FIELDS = {"email", "first_name", "last_name", "language"}
DATE_FIELDS = {"created_at", "confirmed_at"}
OPS_BY_TYPE: dict[str, set[str]] = {
    CustomField.Type.TEXT: {"eq", "neq", "contains", "is_set"},
    CustomField.Type.NUMBER: {"eq", "neq", "gt", "gte", "lt", "lte", "is_set"},
    CustomField.Type.DATE: {"eq", "before", "after", "within_days", "is_set"},
    CustomField.Type.BOOLEAN: {"eq", "is_set"},
    CustomField.Type.CHOICE: {"eq", "neq", "in", "is_set"},
}


def _as_list(value) -> list:
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _date(value, condition) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise SegmentRuleError(f"{value!r} is not a date (YYYY-MM-DD) in {condition!r}") from None


def _days(value, condition) -> int:
    try:
        days = int(value)
    except (TypeError, ValueError):
        raise SegmentRuleError(f"{value!r} is not a number of days in {condition!r}") from None
    if days < 0:
        raise SegmentRuleError(f"The number of days cannot be negative in {condition!r}")
    return days


def _number(value, condition) -> float | int:
    if isinstance(value, bool):
        raise SegmentRuleError(f"{value!r} is not a number in {condition!r}")
    if isinstance(value, int | float):
        return value
    try:
        number = float(str(value))
    except ValueError:
        raise SegmentRuleError(f"{value!r} is not a number in {condition!r}") from None
    return int(number) if number.is_integer() else number


def _start_of_day(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _date_field_q(name: str, op: str | None, value, condition) -> Q:
    if op == "before":
        return Q(**{f"{name}__lt": _start_of_day(_date(value, condition))})
    if op == "after":
        # "after 2024-05-01" means from the day after onwards.
        return Q(**{f"{name}__gte": _start_of_day(_date(value, condition) + dt.timedelta(days=1))})
    if op == "within_days":
        return Q(**{f"{name}__gte": timezone.now() - dt.timedelta(days=_days(value, condition))})
    if op == "is_set":
        return Q(**{f"{name}__isnull": not bool(value)})
    raise SegmentRuleError(f"Operator {op!r} does not apply to {name} in {condition!r}")


def _string_field_q(name: str, op: str | None, value, condition) -> Q:
    if op == "is_set":
        q = Q(**{name: ""})
        return ~q if value else q
    text = str(value if value is not None else "")
    if op == "eq":
        return Q(**{f"{name}__iexact": text})
    if op == "neq":
        return ~Q(**{f"{name}__iexact": text})
    if op == "contains":
        return Q(**{f"{name}__icontains": text})
    if op == "ends_with" and name == "email":
        return Q(**{f"{name}__iendswith": text})
    raise SegmentRuleError(f"Operator {op!r} does not apply to {name} in {condition!r}")


def _topic_exists(slugs: list) -> Exists:
    # Slugs resolve to ids here, at compile time: with constant topic ids the planner can use
    # its statistics (a slug joined inside the subquery made it guess 3% instead of 66% of the
    # rows and pick a million-iteration nested loop).
    ids = list(Topic.objects.filter(slug__in=[str(s) for s in slugs]).values_list("pk", flat=True))
    return Exists(
        Subscription.objects.filter(
            subscriber=OuterRef("pk"),
            topic_id__in=ids or [0],
            status=Subscription.Status.ACTIVE,
        )
    )


def _json_eq(key: str, value) -> Q:
    """attributes[key] == value, and False (never SQL NULL) when the key is missing: JSON
    containment."""
    return Q(attributes__contains={key: value})


def _attribute_q(key: str, op: str | None, value, condition) -> Q:
    field = CustomField.objects.filter(key=key).first()
    if field is None:
        raise SegmentRuleError(f"There is no custom field {key!r}")
    if op not in OPS_BY_TYPE[field.type]:
        raise SegmentRuleError(
            f"Operator {op!r} does not apply to the {field.get_type_display().lower()} field "
            f"{key!r}"
        )
    lookup = f"attributes__{key}"
    if op == "is_set":
        # Set means present and not empty; JSON null and "" count as not set.
        is_set = Q(**{f"{lookup}__isnull": False}) & ~_json_eq(key, "")
        is_set &= ~_json_eq(key, None)
        return is_set if value else ~is_set
    # Values are stored typed (import and forms coerce them), so JSON equality is exact.
    if field.type == CustomField.Type.NUMBER:
        number = _number(value, condition)
        if op in ("eq", "neq"):
            q = _json_eq(key, number)
            return q if op == "eq" else ~q
        return Q(**{f"{lookup}__{op}": number})
    if field.type == CustomField.Type.DATE:
        day = _date(value, condition)
        if op == "eq":
            return _json_eq(key, day.isoformat())
        if op == "before":
            return Q(**{f"{lookup}__lt": day.isoformat()})
        if op == "after":
            return Q(**{f"{lookup}__gt": day.isoformat()})
        since = (timezone.localdate() - dt.timedelta(days=_days(value, condition))).isoformat()
        return Q(**{f"{lookup}__gte": since}) & Q(**{f"{lookup}__lte": "9999-12-31"})
    if field.type == CustomField.Type.BOOLEAN:
        truth = value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
        return _json_eq(key, truth)
    if field.type == CustomField.Type.CHOICE:
        if op == "in":
            q = Q()
            for item in _as_list(value):
                q |= _json_eq(key, str(item))
            return q
        q = _json_eq(key, str(value))
        return q if op == "eq" else ~q
    # text
    if op == "contains":
        return Q(**{f"{lookup}__icontains": str(value)})
    # "present and equal": a missing key then reads as "not equal", not as SQL NULL.
    q = Q(**{f"{lookup}__isnull": False}) & Q(**{f"{lookup}__iexact": str(value)})
    return q if op == "eq" else ~q


def _condition_q(condition: dict, depth: int) -> Q:
    if not isinstance(condition, dict):
        raise SegmentRuleError(f"A condition must be an object, not {condition!r}")
    if "conditions" in condition:
        return _group_q(condition, depth + 1)
    field, op, value = condition.get("field"), condition.get("op"), condition.get("value")
    if not isinstance(field, str) or not field:
        raise SegmentRuleError(f"A condition needs a field: {condition!r}")
    if field in CONDITION_COMPILERS:
        return CONDITION_COMPILERS[field](condition)
    if field == "engagement":
        raise SegmentRuleError(
            "Engagement conditions (opened / clicked) need the analytics app, "
            "which has not registered them yet."
        )
    if field == "status":
        valid = set(Subscriber.Status.values)
        values = _as_list(value)
        if not values or any(v not in valid for v in values):
            raise SegmentRuleError(f"Unknown status {value!r}")
        if op == "eq":
            return Q(status=values[0])
        if op == "neq":
            return ~Q(status=values[0])
        if op == "in":
            return Q(status__in=values)
    elif field == "topic":
        slugs = _as_list(value)
        if op == "in":
            return Q(_topic_exists(slugs))
        if op == "not_in":
            return ~Q(_topic_exists(slugs))
    elif field == "source":
        if value not in Subscriber.Source.values:
            raise SegmentRuleError(f"Unknown source {value!r}")
        if op == "eq":
            return Q(source=value)
        if op == "neq":
            return ~Q(source=value)
    elif field == "signup_form":
        if op == "eq":
            return Q(source=Subscriber.Source.FORM, source_detail=str(value))
    elif field in DATE_FIELDS:
        return _date_field_q(field, op, value, condition)
    elif field in STRING_FIELDS:
        return _string_field_q(field, op, value, condition)
    elif field.startswith("attr."):
        return _attribute_q(field[5:], op, value, condition)
    else:
        raise SegmentRuleError(f"Unknown field {field!r}")
    raise SegmentRuleError(f"Operator {op!r} does not apply to {field} in {condition!r}")


def _group_q(rules: dict, depth: int) -> Q:
    if depth > MAX_DEPTH:
        raise SegmentRuleError(f"Groups nest at most {MAX_DEPTH} levels deep")
    if not isinstance(rules, dict):
        raise SegmentRuleError("Rules must be an object with match and conditions")
    conditions = rules.get("conditions") or []
    if not isinstance(conditions, list):
        raise SegmentRuleError("conditions must be a list")
    match = rules.get("match", "all")
    if match not in ("all", "any"):
        raise SegmentRuleError(f"match must be 'all' or 'any', not {match!r}")
    combined = Q()
    for condition in conditions:
        q = _condition_q(condition, depth)
        combined = (combined & q) if match == "all" else (combined | q)
    return combined


def rules_q(rules: dict) -> Q:
    """The Q of a whole rule set; an empty rule set matches everyone."""
    return _group_q(rules or {}, 1)


def segment_queryset(segment: Segment) -> QuerySet[Subscriber]:
    return Subscriber.objects.filter(rules_q(segment.rules))
