"""Reads on the audience."""

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import CharField, Exists, Func, OuterRef, Q, QuerySet
from django.db.models.functions import Lower, Now

from .models import CustomField, Segment, Subscriber, Suppression
from .segments import rules_q

# Later capabilities add their entries to a subscriber's activity timeline by registering a
# function that returns a list of {"at": datetime, "kind": str, "text": str} dicts, e.g. in their
# AppConfig.ready():  subscribers.selectors.TIMELINE_SOURCES.append(deliveries_for_timeline)
TIMELINE_SOURCES: list[Callable[[Subscriber], list[dict]]] = []


def _own_events(subscriber: Subscriber) -> list[dict]:
    items = [
        {
            "at": subscriber.created_at,
            "kind": "joined",
            "text": f"Joined ({subscriber.get_source_display().lower()})",
        }
    ]
    if subscriber.confirmed_at:
        items.append({"at": subscriber.confirmed_at, "kind": "confirmed", "text": "Confirmed"})
    for s in subscriber.subscriptions.select_related("topic"):
        items.append(
            {"at": s.created_at, "kind": "subscribed", "text": f"Subscribed to {s.topic.name}"}
        )
        if s.unsubscribed_at:
            items.append(
                {
                    "at": s.unsubscribed_at,
                    "kind": "unsubscribed",
                    "text": f"Unsubscribed from {s.topic.name}",
                }
            )
    for c in subscriber.consent_records.all():
        items.append(
            {
                "at": c.created_at,
                "kind": "consent",
                "text": f"Consent given ({c.get_where_display()})",
            }
        )
    return items


def subscriber_timeline(subscriber: Subscriber) -> list[dict]:
    """Everything that happened to a subscriber, newest first."""
    items = _own_events(subscriber)
    for source in TIMELINE_SOURCES:
        items.extend(source(subscriber))
    return sorted(items, key=lambda item: item["at"], reverse=True)


class EmailHash(Func):
    """SQL twin of models.email_hash(): SHA-256 hex of the lowercased address."""

    template = "encode(sha256(convert_to(lower(%(expressions)s), 'UTF8')), 'hex')"
    output_field = CharField()


def subscribers_sendable(queryset: QuerySet[Subscriber] | None = None) -> QuerySet[Subscriber]:
    """Who may be mailed now: active, not erased, not paused, and not suppressed.

    The suppression check is by hash, so an erased address that comes back through an import
    or an API call is still blocked. Campaigns snapshot their audience through this.
    """
    queryset = Subscriber.objects.all() if queryset is None else queryset
    return (
        queryset.filter(status=Subscriber.Status.ACTIVE, erased_at__isnull=True)
        .filter(Q(paused_until__isnull=True) | Q(paused_until__lte=Now()))
        .exclude(Exists(Suppression.objects.filter(email_hash=EmailHash(OuterRef("email")))))
    )


def subscribers_with_email(email: str) -> QuerySet[Subscriber]:
    """Subscribers whose address is ``email``, looked up through the lower(email) unique index
    (a plain ``email=`` filter cannot use it and scans the table)."""
    return Subscriber.objects.alias(email_key=Lower("email")).filter(
        email_key=email.strip().lower()
    )


@dataclass(frozen=True)
class ListTotal:
    count: int
    estimated: bool  # shown as "about N"


def _planned_rows(queryset: QuerySet) -> int:
    sql, params = queryset.values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def _table_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [Subscriber._meta.db_table],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else -1


SMALL_TABLE_BYTES = 8 * 1024 * 1024  # about 30,000 subscribers: counted faster than sampled


def _small_table() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size(%s::regclass)", [Subscriber._meta.db_table])
        return cursor.fetchone()[0] <= SMALL_TABLE_BYTES


def subscribers_total(queryset: QuerySet[Subscriber], *, filtered: bool) -> ListTotal:
    """How many subscribers a list shows, without a COUNT(*) over a large table.

    Up to SUBSCRIBER_EXACT_COUNT_LIMIT the count is exact (a bounded count reads at most that
    many rows); past it the planner's figure stands in: pg_class.reltuples for the whole
    table, EXPLAIN's row estimate for a filtered set. Never below the bound that was counted.
    """
    limit = settings.SUBSCRIBER_EXACT_COUNT_LIMIT
    counted = queryset.order_by()[: limit + 1].count()
    if counted <= limit:
        return ListTotal(counted, estimated=False)
    estimate = _planned_rows(queryset) if filtered else _table_rows()
    return ListTotal(max(estimate, counted), estimated=True)


# The segment editor's live count: exact when PostgreSQL finds it within
# settings.SEGMENT_COUNT_LIVE_MS, else "about N" from a sample of the table, while the page
# asks again for the exact figure, given settings.SEGMENT_COUNT_EXACT_MS.
SAMPLE_ROWS = 10_000  # rows a sampled estimate reads (in whole pages, TABLESAMPLE SYSTEM)


@dataclass(frozen=True)
class LiveCount:
    count: int
    estimated: bool  # shown as "about N"


def _within(budget_ms: int, count: Callable[[], int]) -> int | None:
    """count() under a statement timeout; None when PostgreSQL gave up."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            previous = cursor.fetchone()[0]
            cursor.execute(f"SET LOCAL statement_timeout = {int(budget_ms)}")
            result = count()
            # Inside an outer transaction the setting would outlive this block: put it back.
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
            return result
    except OperationalError:  # QueryCanceled: the rolled back block took the setting with it
        return None


def _sampled_count(queryset: QuerySet[Subscriber]) -> int:
    """The queryset's count over a random sample of the table's pages, scaled up."""
    rows = _table_rows()
    if rows <= 0:  # never analyzed: the planner's guess is all there is
        return _planned_rows(queryset)
    percent = min(100.0, 100.0 * SAMPLE_ROWS / rows)
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    table = f'FROM "{Subscriber._meta.db_table}"'
    # The outer FROM is the first one (topic and engagement conditions are subqueries after
    # it); REPEATABLE keeps the estimate steady while a marketer edits.
    sampled = sql.replace(table, f"{table} TABLESAMPLE SYSTEM ({percent:.6f}) REPEATABLE (1)", 1)

    def count() -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM ({sampled}) AS sample", params)  # noqa: S608
            return cursor.fetchone()[0]

    found = _within(settings.SEGMENT_COUNT_EXACT_MS, count)
    if found is None:
        return _planned_rows(queryset)
    return round(found * 100.0 / percent)


def segment_live_count(queryset: QuerySet[Subscriber], *, exact: bool = False) -> LiveCount:
    """How many subscribers a segment being edited matches, fast enough to follow typing.

    Exact when PostgreSQL counts it within SEGMENT_COUNT_LIVE_MS (small lists, selective
    conditions on indexed columns); else an estimate from a sample of SAMPLE_ROWS rows. With
    ``exact`` (the follow-up request), up to SEGMENT_COUNT_EXACT_MS for the exact count.
    """
    # A table a sample would read whole anyway is counted exactly (a busy machine must not
    # turn a count of a few thousand rows into "about N").
    long = exact or _small_table()
    budget = settings.SEGMENT_COUNT_EXACT_MS if long else settings.SEGMENT_COUNT_LIVE_MS
    counted = _within(budget, queryset.order_by().count)
    if counted is not None:
        return LiveCount(counted, estimated=False)
    return LiveCount(_sampled_count(queryset), estimated=True)


_WHOLE_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def subscribers_filtered(filters: dict) -> QuerySet[Subscriber]:
    """The subscribers a filter set selects; the filters compile through the segment rules."""
    conditions: list[dict] = []
    if filters.get("status"):
        conditions.append({"field": "status", "op": "eq", "value": filters["status"]})
    if filters.get("topic"):
        conditions.append({"field": "topic", "op": "in", "value": filters["topic"]})
    if filters.get("attr"):
        key = filters["attr"]
        field = CustomField.objects.filter(key=key).first()
        value = filters.get("attr_value", "")
        if field is not None and value:
            op = "contains" if field.type == CustomField.Type.TEXT else "eq"
            conditions.append({"field": f"attr.{key}", "op": op, "value": value})
        elif field is not None:
            conditions.append({"field": f"attr.{key}", "op": "is_set", "value": True})
    queryset = Subscriber.objects.filter(rules_q({"match": "all", "conditions": conditions}))
    if filters.get("segment"):
        segment = (
            Segment.objects.filter(pk=filters["segment"]).first()
            if filters["segment"].isdigit()
            else None
        )
        if segment is not None:
            queryset = queryset.filter(rules_q(segment.rules))
    if filters.get("q"):
        q = filters["q"]
        if _WHOLE_ADDRESS.fullmatch(q.strip()):
            # A whole address: through the lower(email) unique index, not a scan of the list
            # for a substring (seconds at a million subscribers).
            queryset = queryset.filter(pk__in=subscribers_with_email(q).values("pk"))
        else:
            queryset = queryset.filter(
                Q(email__icontains=q) | Q(first_name__icontains=q) | Q(last_name__icontains=q)
            )
    return queryset


def subscribers_selected(
    *, filters: dict, ids: set[int] | None, upto: int | None
) -> QuerySet[Subscriber]:
    """What a bulk action applies to: the ticked rows (``ids``), or (None) every subscriber the
    filters match; bounded by ``upto``, the highest id the confirmation page counted, so a
    subscriber who joins meanwhile is not swept in."""
    queryset = subscribers_filtered(filters)
    if ids is not None:
        queryset = queryset.filter(pk__in=ids)
    if upto is not None:
        queryset = queryset.filter(pk__lte=upto)
    return queryset


@dataclass
class SubscriberPage:
    rows: list[Subscriber]
    has_older: bool
    has_newer: bool


def subscribers_page(
    queryset: QuerySet[Subscriber], *, after: int | None, before: int | None, size: int
) -> SubscriberPage:
    """One page of a list, newest first. Keyset pagination: "after"/"before" an id, never
    OFFSET and never COUNT(*) of the list."""
    if before is not None:
        rows = list(queryset.filter(id__gt=before).order_by("id")[: size + 1])
        return SubscriberPage(
            list(reversed(rows[:size])), has_older=True, has_newer=len(rows) > size
        )
    if after is not None:
        queryset = queryset.filter(id__lt=after)
    rows = list(queryset.order_by("-id")[: size + 1])
    return SubscriberPage(rows[:size], has_older=len(rows) > size, has_newer=after is not None)


# --- CSV downloads ---------------------------------------------------------------------------

EXPORT_PAGE = 2000  # rows per query of a CSV download


def subscribers_export_rows(queryset: QuerySet[Subscriber]) -> Iterator[list]:
    """The CSV download's rows: a header, then every subscriber of ``queryset`` with the
    custom fields as columns."""
    keys = list(CustomField.objects.values_list("key", flat=True))
    header = ["email", "first_name", "last_name", "status", "source", "language", "timezone"]
    yield [*header, "created_at", "confirmed_at", *keys]
    rows = queryset.order_by("id").values_list(
        "id", *header, "created_at", "confirmed_at", "attributes"
    )
    # Pages of EXPORT_PAGE rows by id: a million rows stream out without being loaded at once,
    # and without a server-side cursor, which would not survive PgBouncer in transaction mode
    # (its WITH HOLD cursor stays on one server connection, the next FETCH may reach another).
    last = 0
    while page := list(rows.filter(id__gt=last)[:EXPORT_PAGE]):
        last = page[-1][0]
        yield from (_export_row(row, keys) for row in page)


def _export_row(row: tuple, keys: list[str]) -> list:
    _id, *plain, created, confirmed, attributes = row
    attributes = attributes or {}
    return [
        *plain,
        created.isoformat(),
        confirmed.isoformat() if confirmed else "",
        *[attributes.get(k, "") for k in keys],
    ]
