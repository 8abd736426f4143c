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


def subscriber_out(subscriber: Subscriber) -> dict:
    return {
        "id": subscriber.pk,
        "email": subscriber.email,
        "first_name": subscriber.first_name,
        "last_name": subscriber.last_name,
        "status": subscriber.status,
        "source": subscriber.source,
        "language": subscriber.language,
        "timezone": subscriber.timezone,
        "attributes": subscriber.attributes or {},
        "topics": list(getattr(subscriber, "topic_slugs", None) or []),
        "created_at": subscriber.created_at,
        "updated_at": subscriber.updated_at,
        "confirmed_at": subscriber.confirmed_at,
        "erased": subscriber.erased_at is not None,
    }


def subscriber_out_of_row(values: Sequence[Any]) -> dict:
    """``subscriber_out`` of a row read with a plain cursor, its columns in that order (id,
    email, first_name, last_name, status, source, language, timezone, attributes, topics,
    created_at, updated_at, confirmed_at, erased): the single upsert reads its subscriber in
    the upsert's own call (api 0003), without making a model of it."""
    (
        pk,
        email,
        first_name,
        last_name,
        status,
        source,
        language,
        timezone,
        attributes,
        topics,
        created_at,
        updated_at,
        confirmed_at,
        erased,
    ) = values
    if isinstance(attributes, str):  # Django's connection loads jsonb as text
        attributes = json.loads(attributes)
    return {
        "id": pk,
        "email": email,
        "first_name": first_name,
        "last_name": last_name,
        "status": status,
        "source": source,
        "language": language,
        "timezone": timezone,
        "attributes": attributes or {},
        "topics": list(topics or []),
        "created_at": created_at,
        "updated_at": updated_at,
        "confirmed_at": confirmed_at,
        "erased": bool(erased),
    }


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
