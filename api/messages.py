"""POST /api/v1/messages: send one template to one recipient with data (a transactional
message: an order confirmation, a password reset), through campaigns.transactional.

Needs an API key with the ``send`` scope. The ``Idempotency-Key`` header makes a retried
request return the first message (200) instead of sending another (201 the first time).
"""

from typing import Any

from ninja import Field, Router, Schema, Status

from campaigns.models import SendingConnection
from campaigns.transactional import TransactionalError, send_transactional
from templates_app.models import Template

from .auth import require_scope
from .errors import ApiError, Error

router = Router(tags=["messages"])


class MessageIn(Schema):
    template: int = Field(description="The template's id.")
    to: str = Field(max_length=254, description="The recipient's address.")
    data: dict[str, Any] = Field(
        default_factory=dict,
        description='Merge values, e.g. {"order_number": "A-1001"}: the template says '
        "{{ order_number }}.",
    )
    connection: str | None = Field(
        default=None, max_length=100, description="A sending connection's name (else the default)."
    )


class MessageOut(Schema):
    id: int = Field(description="The delivery's id (events and webhooks name it).")
    status: str = Field(description="pending, then sent, skipped, failed or unknown.")
    to: str
    template: int
    message_id: str = Field(description="The Message-ID header, once sent.")
    idempotency_key: str
    created: bool = Field(description="False when the Idempotency-Key was used before.")


def _out(delivery, *, template_id: int, created: bool) -> dict[str, Any]:
    return {
        "id": delivery.pk,
        "status": delivery.status,
        "to": delivery.email,
        "template": template_id,
        "message_id": delivery.message_id,
        "idempotency_key": delivery.idempotency_key,
        "created": created,
    }


@router.post(
    "",  # /api/v1/messages, as every collection: no trailing slash
    response={
        200: MessageOut,
        201: MessageOut,
        **dict.fromkeys((400, 401, 403, 404, 422, 429), Error),
    },
    summary="Send a transactional message",
)
def message_send(request, payload: MessageIn):
    require_scope(request, "send")
    template = Template.objects.filter(pk=payload.template).first()
    if template is None:
        raise ApiError(404, f"No template has the id {payload.template}.", field="template")
    connection = None
    if payload.connection:
        connection = SendingConnection.objects.filter(name=payload.connection).first()
        if connection is None:
            raise ApiError(
                404,
                f"No sending connection is named {payload.connection!r}.",
                field="connection",
            )
    try:
        result = send_transactional(
            template=template,
            to_email=payload.to,
            data=payload.data,
            idempotency_key=request.headers.get("Idempotency-Key", ""),
            connection=connection,
        )
    except TransactionalError as exc:
        field = {"key": "Idempotency-Key"}.get(exc.field, exc.field)
        raise ApiError(400, str(exc), field=field) from exc
    return Status(
        201 if result.created else 200,
        _out(result.delivery, template_id=template.pk, created=result.created),
    )
