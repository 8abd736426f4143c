"""/templates, /segments and /events: content, audiences and what happened."""

import datetime as dt
from typing import Any, Literal

from django.db.models import Q
from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from analytics.models import Event
from subscribers.models import Segment, Subscriber
from subscribers.segments import SegmentRuleError, segment_queryset
from templates_app.merge import MergeSyntaxError
from templates_app.models import Template
from templates_app.services import template_preview_render

from .auth import require_scope
from .errors import ApiError, Error
from .schemas import SubscriberPage
from .selectors import cursor_read, subscriber_out, with_topics

router = Router()

ERRORS: dict[int, Any] = {400: Error, 401: Error, 403: Error, 404: Error, 422: Error, 429: Error}


# --- templates -------------------------------------------------------------------------------


class TemplateOut(Schema):
    id: int
    kind: str
    name: str
    language: str
    subject: str
    preheader: str
    tags: list[Any]
    current_version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class TemplateDetail(TemplateOut):
    html_body: str
    text_body: str


class PreviewOut(Schema):
    version: int
    subject: str
    preheader: str
    html: str
    text: str
    subscriber_id: int | None


class PreviewQuery(Schema):
    subscriber: int | None = Field(
        None, ge=1, le=2**62, description="Render for this subscriber (else sample data)."
    )
    version: int | None = Field(None, ge=1, le=2**31, description="Else the current one.")


def _template(template_id: int) -> Template:
    template = Template.objects.filter(pk=template_id).first()
    if template is None:
        raise ApiError(404, f"No template {template_id}.")
    return template


@router.get("/templates", response={200: list[TemplateOut], **ERRORS}, tags=["templates"])
def template_list(request: HttpRequest, kind: Literal["newsletter", "canned_reply"] | None = None):
    require_scope(request, "read")
    queryset = Template.objects.all()
    if kind:
        queryset = queryset.filter(kind=kind)
    return list(queryset.order_by("kind", "name", "id"))


@router.get(
    "/templates/{int:template_id}", response={200: TemplateDetail, **ERRORS}, tags=["templates"]
)
def template_detail(request: HttpRequest, template_id: int):
    require_scope(request, "read")
    return _template(template_id)


@router.get(
    "/templates/{int:template_id}/preview",
    response={200: PreviewOut, **ERRORS},
    tags=["templates"],
)
def template_preview(request: HttpRequest, template_id: int, query: Query[PreviewQuery]):
    """The message as a subscriber would get it: the same merge values (one function builds
    them for the preview, the test send and the sending pipeline) and the same compiled
    version. Unsubscribe and preference links are samples."""
    require_scope(request, "read")
    template = _template(template_id)
    number = query.version or template.current_version
    version = template.versions.filter(number=number).first()
    if version is None:
        raise ApiError(404, f"Template {template_id} has no version {number}.", field="version")
    subscriber = None
    if query.subscriber is not None:
        subscriber = Subscriber.objects.filter(pk=query.subscriber).first()
        if subscriber is None:
            raise ApiError(404, f"No subscriber {query.subscriber}.", field="subscriber")
    try:
        message = template_preview_render(version, subscriber)
    except MergeSyntaxError as exc:
        raise ApiError(422, f"The template does not compile: {exc}", code="template") from None
    return {
        "version": version.number,
        "subject": message.subject,
        "preheader": message.preheader,
        "html": message.html,
        "text": message.text,
        "subscriber_id": subscriber.pk if subscriber else None,
    }


# --- segments --------------------------------------------------------------------------------


class SegmentOut(Schema):
    id: int
    name: str
    description: str
    rules: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime


class CountOut(Schema):
    count: int


def _segment_queryset(segment_id: int):
    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:
        raise ApiError(404, f"No segment {segment_id}.")
    try:
        return segment_queryset(segment)
    except SegmentRuleError as exc:
        raise ApiError(422, f"The segment's rules no longer apply: {exc}", code="rules") from None


@router.get("/segments", response={200: list[SegmentOut], **ERRORS}, tags=["segments"])
def segment_list(request: HttpRequest):
    require_scope(request, "read")
    return list(Segment.objects.order_by("name", "id"))


@router.get(
    "/segments/{int:segment_id}/count", response={200: CountOut, **ERRORS}, tags=["segments"]
)
def segment_count(request: HttpRequest, segment_id: int):
    """How many subscribers match now (rules evaluated live, one SQL query)."""
    require_scope(request, "read")
    return {"count": _segment_queryset(segment_id).count()}


class MembersQuery(Schema):
    cursor: str | None = Field(None, pattern=r"^[0-9]{1,18}$")
    limit: int = Field(100, ge=1, le=1000)


@router.get(
    "/segments/{int:segment_id}/members",
    response={200: SubscriberPage, **ERRORS},
    tags=["segments"],
)
def segment_members(request: HttpRequest, segment_id: int, query: Query[MembersQuery]):
    """The subscribers who match now, by id (keyset pagination)."""
    require_scope(request, "read")
    queryset = _segment_queryset(segment_id)
    after = cursor_read(query.cursor)
    if after is not None:
        queryset = queryset.filter(pk__gt=after)
    rows = list(with_topics(queryset).order_by("id")[: query.limit + 1])
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return {
        "data": [subscriber_out(s) for s in rows],
        "next_cursor": str(rows[-1].pk) if more else None,
    }


# --- events ----------------------------------------------------------------------------------


class EventOut(Schema):
    id: int
    kind: str
    occurred_at: dt.datetime
    campaign_id: int | None
    subscriber_id: int | None
    delivery_id: int | None
    link_id: int | None
    classification: str
    bounce_type: str
    reason: str
    url: str


class EventPage(Schema):
    data: list[EventOut]
    next_cursor: str | None


class EventQuery(Schema):
    cursor: str | None = Field(
        None, pattern=r"^[0-9]{1,18}$", description="`next_cursor` of the last call."
    )
    kind: list[Literal[tuple(Event.Kind.values)]] = Field(default_factory=list)  # type: ignore[valid-type]
    campaign: int | None = Field(None, ge=1, le=2**62)
    subscriber: int | None = Field(None, ge=1, le=2**62)
    limit: int = Field(500, ge=1, le=5000)


@router.get("/events", response={200: EventPage, **ERRORS}, tags=["events"])
def event_list(request: HttpRequest, query: Query[EventQuery]):
    """Events in the order they were recorded, after a cursor: poll with the last
    `next_cursor` to get what happened since (it is given even on the last page)."""
    require_scope(request, "read")
    queryset = Event.objects.all()
    filters = Q()
    if query.kind:
        filters &= Q(kind__in=query.kind)
    if query.campaign is not None:
        filters &= Q(campaign_id=query.campaign)
    if query.subscriber is not None:
        filters &= Q(subscriber_id=query.subscriber)
    after = cursor_read(query.cursor)
    if after is not None:
        filters &= Q(pk__gt=after)
    rows = list(queryset.filter(filters).order_by("id").only(*EventOut.model_fields)[: query.limit])
    cursor = str(rows[-1].pk) if rows else (query.cursor or None)
    return {"data": rows, "next_cursor": cursor}
