"""/topics, /fields and /suppressions: the lists the audience is built on."""

from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import Field

from subscribers.forms import TopicForm
from subscribers.models import CustomField, Suppression, Topic, email_hash
from subscribers.services import (
    CustomFieldError,
    custom_field_create,
    suppression_add,
    suppression_lift,
)

from .auth import require_scope
from .errors import ApiError, Error
from .schemas import (
    CustomFieldIn,
    CustomFieldOut,
    Email,
    SuppressionIn,
    SuppressionOut,
    SuppressionPage,
    TopicIn,
    TopicOut,
)
from .selectors import cursor_read

router = Router()

ERRORS: dict[int, Any] = {400: Error, 401: Error, 403: Error, 404: Error, 422: Error, 429: Error}


@router.get("/topics", response={200: list[TopicOut], **ERRORS}, tags=["topics"])
def topic_list(request: HttpRequest):
    require_scope(request, "read")
    return list(Topic.objects.order_by("name", "id"))


@router.post(
    "/topics", response={201: TopicOut, 409: Error, **ERRORS}, tags=["topics"], summary="Create"
)
def topic_create(request: HttpRequest, payload: TopicIn):
    """A new topic (admin scope, as in the dashboard), checked by the dashboard's own form."""
    require_scope(request, "admin")
    form = TopicForm(data=payload.dict())
    if not form.is_valid():
        name, errors = next(iter(form.errors.items()))
        status = 409 if name == "slug" and Topic.objects.filter(slug=payload.slug).exists() else 422
        raise ApiError(status, f"{name}: {errors[0]}", field=name)
    return Status(201, form.save())


@router.get("/fields", response={200: list[CustomFieldOut], **ERRORS}, tags=["fields"])
def field_list(request: HttpRequest):
    """Custom fields: the attributes a subscriber can have (`attributes.<key>`)."""
    require_scope(request, "read")
    return list(CustomField.objects.order_by("label", "id"))


@router.post("/fields", response={201: CustomFieldOut, 409: Error, **ERRORS}, tags=["fields"])
def field_create(request: HttpRequest, payload: CustomFieldIn):
    """A new custom field; its key is made from the label (admin scope)."""
    require_scope(request, "admin")
    try:
        field = custom_field_create(label=payload.label, type=payload.type)
    except CustomFieldError as exc:
        status = 409 if "exists" in str(exc) else 422
        raise ApiError(status, str(exc), field="label") from None
    return Status(201, field)


class SuppressionFilters(Schema):
    reason: str | None = Field(None, max_length=16, pattern=r"^[a-z_]+$")
    cursor: str | None = Field(None, pattern=r"^[0-9]{1,18}$")
    limit: int = Field(100, ge=1, le=1000)


@router.get("/suppressions", response={200: SuppressionPage, **ERRORS}, tags=["suppressions"])
def suppression_list(request: HttpRequest, filters: Query[SuppressionFilters]):
    """Addresses never mailed, oldest first (keyset pagination)."""
    require_scope(request, "read")
    queryset = Suppression.objects.all()
    if filters.reason:
        queryset = queryset.filter(reason=filters.reason)
    after = cursor_read(filters.cursor)
    if after is not None:
        queryset = queryset.filter(pk__gt=after)
    rows = list(queryset.order_by("id")[: filters.limit + 1])
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    return {"data": rows, "next_cursor": str(rows[-1].pk) if more else None}


@router.post(
    "/suppressions",
    response={201: SuppressionOut, 200: SuppressionOut, **ERRORS},
    tags=["suppressions"],
)
def suppression_create(request: HttpRequest, payload: SuppressionIn):
    """Never mail this address (manual reason). An address already suppressed keeps its
    first reason (200)."""
    key = require_scope(request, "write")
    existed = Suppression.objects.filter(email_hash=email_hash(payload.email)).exists()
    suppression = suppression_add(
        email=payload.email,
        reason=Suppression.Reason.MANUAL,
        note=payload.note,
        event=f"api:{key.name}",
    )
    return Status((200 if existed else 201), suppression)


class SuppressionRemove(Schema):
    email: Email


@router.delete("/suppressions/{email}", response={204: None, **ERRORS}, tags=["suppressions"])
def suppression_remove(request: HttpRequest, email: str):
    """Lift a suppression (admin scope: mail to a complainer or a dead address hurts every
    sender's reputation). 404 when the address is not suppressed."""
    require_scope(request, "admin")
    if not suppression_lift(email=email):
        raise ApiError(404, "This address is not suppressed.", field="email")
    return Status(204, None)
