"""Reads of the API: subscribers as the API shows them (one query per page, topics included)."""

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from subscribers.models import Subscriber

from .errors import ApiError

# The slugs of the topics a subscriber is on, in the same query as the rows (no N+1).
_TOPICS_SQL = """
    ARRAY(SELECT t.slug FROM subscribers_subscription ss
          JOIN subscribers_topic t ON t.id = ss.topic_id
          WHERE ss.subscriber_id = subscribers_subscriber.id AND ss.status = 'active'
          ORDER BY t.slug)
"""


def with_topics(queryset: QuerySet[Subscriber]) -> QuerySet[Subscriber]:
    return queryset.annotate(topic_slugs=RawSQL(_TOPICS_SQL, []))  # noqa: S611 - constant SQL


# The API's subscriber, in this order: what subscriber_out_of_row reads off a plain cursor.
SUBSCRIBER_OUT_FIELDS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "status",
    "source",
    "language",
    "timezone",
    "attributes",
    "topics",
    "created_at",
    "updated_at",
    "confirmed_at",
    "erased",
)


def subscriber_out(subscriber: Subscriber) -> dict:
    return subscriber_out_of_row(
        (
            subscriber.pk,
            subscriber.email,
            subscriber.first_name,
            subscriber.last_name,
            subscriber.status,
            subscriber.source,
            subscriber.language,
            subscriber.timezone,
            subscriber.attributes,
            getattr(subscriber, "topic_slugs", None),
            subscriber.created_at,
            subscriber.updated_at,
            subscriber.confirmed_at,
            subscriber.erased_at is not None,
        )
    )


def subscriber_out_of_row(values: Sequence[Any]) -> dict:
    """The API's subscriber from its values in SUBSCRIBER_OUT_FIELDS' order: a model's
    (``subscriber_out``), or a row the single upsert reads in the upsert's own call (api 0003)
    without making a model of it."""
    out = dict(zip(SUBSCRIBER_OUT_FIELDS, values, strict=True))
    if isinstance(out["attributes"], str):  # Django's connection loads jsonb as text
        out["attributes"] = json.loads(out["attributes"])
    out["attributes"] = out["attributes"] or {}
    out["topics"] = list(out["topics"] or [])
    out["erased"] = bool(out["erased"])
    return out


def subscriber_get(subscriber_id: int) -> Subscriber:
    # Raw: after every single upsert, and the ORM's compilation was most of its cost.
    found = Subscriber.objects.raw(
        f"SELECT subscribers_subscriber.*, {_TOPICS_SQL} AS topic_slugs "  # noqa: S608 - constant
        "FROM subscribers_subscriber WHERE id = %s",
        [subscriber_id],
    )
    subscriber = next(iter(found), None)
    if subscriber is None:
        raise ApiError(404, f"No subscriber {subscriber_id}.")
    return subscriber


def etag_of(updated_at: dt.datetime, pk: int) -> str:
    return f'"{pk}-{int(updated_at.timestamp() * 1_000_000)}"'


def cursor_read(cursor: str | None) -> int | None:
    """Cursors are the last id of the previous page (keyset pagination)."""
    if cursor is None or cursor == "":
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise ApiError(422, "cursor: not a cursor this API gave.", field="cursor")
    return int(cursor)
