"""/signups: a person signs up through one of the signup forms, from the site's backend."""

from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from pydantic import Field, StringConstraints

from signup.services import Origin

from .auth import require_scope
from .errors import Error
from .services import api_signup_submit, ip_or_none

router = Router(tags=["signups"])

FieldValue = Annotated[str, StringConstraints(max_length=1000)] | bool | int | float | list[str]


class SignupIn(Schema):
    form: Annotated[str, StringConstraints(min_length=1, max_length=20, pattern=r"^[-\w]+$")] = (
        Field(description="The signup form's public id (Signup forms → the form's embed code).")
    )
    fields: dict[Annotated[str, StringConstraints(max_length=100)], FieldValue] = Field(
        description="The form's fields by name, all steps at once, e.g. "
        '{"email": "ann@example.com", "first_name": "Ann", "consent": true}.'
    )
    ip: str | None = Field(
        None,
        description="The person's IP address: kept with their consent, and rate limited "
        "like a form's visitors.",
    )
    user_agent: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")] = ""
    page: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")] = ""


class SignupOut(Schema):
    signup_id: int
    subscriber_id: int
    status: str = Field(description="pending_confirmation (double opt-in) or active.")
    double_opt_in: bool
    confirmation_sent: bool


ERRORS: dict[int, Any] = {
    400: Error,
    401: Error,
    403: Error,
    404: Error,
    422: Error,
    429: Error,
}


@router.post("", response={201: SignupOut, **ERRORS}, summary="Sign a person up")
def signup_create(request: HttpRequest, payload: SignupIn):
    """The same as the person filling in the form: its double opt-in (a confirmation email
    they must click), its consent text, its checks and rate limits."""
    key = require_scope(request, "write")
    fields = {k: ("1" if v is True else "" if v is False else v) for k, v in payload.fields.items()}
    fields = {k: (v if isinstance(v, list) else str(v)) for k, v in fields.items()}
    origin = Origin(
        page=payload.page.split("?", 1)[0],
        ip=ip_or_none(payload.ip, field="ip"),
        user_agent=payload.user_agent,
    )
    result = api_signup_submit(
        public_id=payload.form, fields=fields, origin=origin, key_name=key.name
    )
    return Status(201, result)
