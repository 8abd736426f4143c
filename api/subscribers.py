"""/subscribers: the audience, through the same services as the dashboard."""

import datetime as dt
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Header, Query, Router, Schema, Status
from pydantic import Field

from subscribers.models import Subscriber
from subscribers.segments import SegmentRuleError
from subscribers.selectors import subscribers_filtered
from subscribers.services import (
    subscriber_erase,
    subscriber_export,
    subscribers_bulk_delete,
)

from .auth import require_scope
from .errors import ApiError, Error
from .schemas import (
    AttrKey,
    BulkResult,
    BulkUpsert,
    Slug,
    SubscriberCreate,
    SubscriberOut,
    SubscriberPage,
    SubscriberPatch,
    SubscriberStatus,
    SubscriberUpsert,
    UpsertResult,
)
from .selectors import cursor_read, etag_of, subscriber_get, subscriber_out, with_topics
from .services import (
    api_subscriber_create,
    api_subscriber_patch,
    subscribers_upsert,
)
from .services import subscriber_upsert as subscriber_upsert_one

router = Router(tags=["subscribers"])

ERRORS: dict[int, Any] = {400: Error, 401: Error, 403: Error, 404: Error, 422: Error, 429: Error}


def _with_etag(response: HttpResponse, subscriber: Subscriber) -> HttpResponse:
    response["ETag"] = etag_of(subscriber.updated_at, subscriber.pk)
    return response


class SubscriberFilters(Schema):
    status: SubscriberStatus | None = None
    topic: list[Slug] = Field(default_factory=list, description="Subscribed to any of these.")
    segment: int | None = Field(None, ge=1, le=2**62, description="In this segment (its id).")
    attribute: AttrKey | None = Field(
        None, description="Has this attribute set (with `attribute_value`: equal to it)."
    )
    attribute_value: str | None = Field(None, max_length=1000, pattern=r"^[^\x00]*$")
    updated_since: dt.datetime | None = None
    cursor: str | None = Field(None, pattern=r"^[0-9]{1,18}$")
    limit: int = Field(100, ge=1, le=1000)


@router.get("", response={200: SubscriberPage, **ERRORS}, summary="List subscribers")
def subscriber_list(request: HttpRequest, filters: Query[SubscriberFilters]):
    """Newest last, by id (keyset pagination: pass `next_cursor` back as `cursor`)."""
    require_scope(request, "read")
    after = cursor_read(filters.cursor)
    selection: dict[str, Any] = {"status": filters.status, "topic": filters.topic}
    if filters.attribute:
        selection["attr"] = filters.attribute
        selection["attr_value"] = filters.attribute_value or ""
    if filters.segment is not None:
        selection["segment"] = str(filters.segment)
    try:
        queryset = subscribers_filtered(selection)
    except SegmentRuleError as exc:
        raise ApiError(422, str(exc), field="attribute_value") from None
    if filters.updated_since is not None:
        since = filters.updated_since
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        queryset = queryset.filter(updated_at__gte=since)
    if after is not None:
        queryset = queryset.filter(pk__gt=after)
    rows = list(with_topics(queryset).order_by("id")[: filters.limit + 1])
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    return {
        "data": [subscriber_out(s) for s in rows],
        "next_cursor": str(rows[-1].pk) if more else None,
    }


@router.post("", response={201: SubscriberOut, 409: Error, **ERRORS}, summary="Create")
def subscriber_create(request: HttpRequest, payload: SubscriberCreate):
    """A new subscriber (409 if the address is there already: use upsert to merge)."""
    key = require_scope(request, "write")
    subscriber = api_subscriber_create(data=payload, key_name=key.name)
    subscriber = subscriber_get(subscriber.pk)
    return Status(201, subscriber_out(subscriber))


@router.post("/upsert", response={200: UpsertResult, 201: UpsertResult, 409: Error, **ERRORS})
def subscriber_upsert(request: HttpRequest, payload: SubscriberUpsert):
    """Create or update by email address: given names and attributes replace (attributes are
    merged), omitted ones stay; topics are added. New people are unconfirmed."""
    key = require_scope(request, "write")
    outcome, subscriber = subscriber_upsert_one(row=payload, key_name=key.name)
    if outcome == "suppressed":
        raise ApiError(
            409,
            "This address is suppressed (unsubscribed, bounced, complained or erased): it is "
            "left alone. Only the person can bring it back, by signing up (POST /signups).",
            code="suppressed",
            field="email",
        )
    if subscriber is None:  # deleted by someone else the moment it was written
        raise ApiError(404, "No subscriber with this address.")
    status = 201 if outcome == "created" else 200
    return Status(status, {"created": outcome == "created", "subscriber": subscriber})


@router.post("/bulk", response={200: BulkResult, **ERRORS}, summary="Bulk upsert")
def subscriber_bulk_upsert(request: HttpRequest, payload: BulkUpsert):
    """Upsert up to 10,000 subscribers in one call (one SQL statement). Rows that do not
    validate are listed in `rejected` by index; the others are merged."""
    key = require_scope(request, "write")
    result = subscribers_upsert(
        rows=payload.subscribers,
        topics=payload.topics,
        update_existing=payload.update_existing,
        key_name=key.name,
    )
    result.pop("ids")
    return result


@router.get("/{int:subscriber_id}", response={200: SubscriberOut, **ERRORS}, summary="Get")
def subscriber_detail(request: HttpRequest, subscriber_id: int, response: HttpResponse):
    """One subscriber; its `ETag` header goes in `If-Match` of a PATCH."""
    require_scope(request, "read")
    subscriber = subscriber_get(subscriber_id)
    _with_etag(response, subscriber)
    return subscriber_out(subscriber)


@router.patch(
    "/{int:subscriber_id}",
    response={200: SubscriberOut, 409: Error, 412: Error, **ERRORS},
    summary="Update",
)
def subscriber_patch(
    request: HttpRequest,
    subscriber_id: int,
    payload: SubscriberPatch,
    response: HttpResponse,
    if_match: str | None = Header(None, alias="If-Match", max_length=100),
):
    """Change names, address, attributes (merged), topics (add / remove) or status. With
    `If-Match: <ETag>` the change is refused (412) if someone changed them since."""
    require_scope(request, "write")
    api_subscriber_patch(subscriber_id=subscriber_id, data=payload, if_match=if_match)
    subscriber = subscriber_get(subscriber_id)
    _with_etag(response, subscriber)
    return subscriber_out(subscriber)


@router.delete("/{int:subscriber_id}", response={204: None, 412: Error, **ERRORS}, summary="Delete")
def subscriber_delete(
    request: HttpRequest,
    subscriber_id: int,
    if_match: str | None = Header(None, alias="If-Match", max_length=100),
):
    """Delete the subscriber and what hangs on them (their deliveries and events stay
    counted in reports only if you erase instead: POST /subscribers/{id}/erase)."""
    require_scope(request, "write")
    subscriber = subscriber_get(subscriber_id)
    if if_match is not None and if_match.strip() not in (
        "*",
        etag_of(subscriber.updated_at, subscriber.pk),
    ):
        raise ApiError(412, "The subscriber changed since you read it.", field="If-Match")
    subscribers_bulk_delete(queryset=Subscriber.objects.filter(pk=subscriber.pk))
    return Status(204, None)


@router.post(
    "/{int:subscriber_id}/erase", response={200: SubscriberOut, **ERRORS}, summary="GDPR erase"
)
def subscriber_gdpr_erase(request: HttpRequest, subscriber_id: int):
    """Right to erasure: personal data wiped everywhere, an anonymous row kept for the
    reports, the address's hash suppressed."""
    require_scope(request, "write")
    subscriber = subscriber_get(subscriber_id)
    if subscriber.erased_at is None:
        subscriber_erase(subscriber=subscriber)
    return subscriber_out(subscriber_get(subscriber_id))


@router.get(
    "/{int:subscriber_id}/export", response={200: dict[str, Any], **ERRORS}, summary="GDPR export"
)
def subscriber_gdpr_export(request: HttpRequest, subscriber_id: int):
    """Everything held about one person (right of access), as the dashboard's download."""
    require_scope(request, "read")
    return subscriber_export(subscriber=subscriber_get(subscriber_id))
