"""Request and response bodies of the API (pydantic, through ninja's Schema)."""

import datetime as dt
from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import BaseModel, Field, StringConstraints

# No NUL anywhere: PostgreSQL text cannot hold it.
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]
Email = Annotated[str, StringConstraints(min_length=1, max_length=254, pattern=r"^[^\x00]*$")]
Slug = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[-a-zA-Z0-9_]+$")]
Name = Annotated[str, StringConstraints(max_length=150, pattern=r"^[^\x00]*$")]
Language = Annotated[str, StringConstraints(min_length=1, max_length=8, pattern=r"^[-a-zA-Z_]+$")]
TimeZone = Annotated[str, StringConstraints(max_length=64, pattern=r"^[^\x00]*$")]
AttrKey = Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=r"^[-a-z0-9_]+$")]
# Attribute values: typed by their custom field (text, number, date, yes/no, choice).
AttrValue = Annotated[str, StringConstraints(max_length=1000)] | int | float | bool | None
Attributes = dict[AttrKey, AttrValue]

SubscriberStatus = Literal["unconfirmed", "active", "unsubscribed", "bounced", "complained"]


class Page(Schema):
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last page."
    )


class SubscriberOut(Schema):
    id: int
    email: str
    first_name: str
    last_name: str
    status: SubscriberStatus
    source: str
    language: str
    timezone: str
    attributes: dict[str, Any]
    topics: list[str] = Field(description="Slugs of the topics they are subscribed to.")
    created_at: dt.datetime
    updated_at: dt.datetime
    confirmed_at: dt.datetime | None
    erased: bool


class SubscriberPage(Page):
    data: list[SubscriberOut]


class Consent(Schema):
    text: Annotated[str, StringConstraints(min_length=1, max_length=5000, pattern=r"^[^\x00]*$")]
    version: Annotated[str, StringConstraints(max_length=50, pattern=r"^[^\x00]*$")] = ""
    ip: str | None = Field(None, description="The person's address when they consented.")
    user_agent: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")] = ""


class SubscriberCreate(Schema):
    email: Email
    first_name: Name = ""
    last_name: Name = ""
    language: Language = "en"
    timezone: TimeZone = ""
    attributes: Attributes = Field(default_factory=dict)
    topics: list[Slug] = Field(default_factory=list, max_length=100)
    status: Literal["unconfirmed", "active"] = Field(
        "unconfirmed",
        description="`active` only with the `consent` they gave you; otherwise sign them up "
        "through POST /signups (double opt-in).",
    )
    consent: Consent | None = None


# Plain pydantic models for the bulk path: ninja's Schema adds a validator per object (for
# reading ORM rows) that costs more than the rest of the validation of 10,000 rows.
class SubscriberUpsert(BaseModel):
    email: Email
    first_name: Name | None = None
    last_name: Name | None = None
    language: Language | None = None
    timezone: TimeZone | None = None
    attributes: Attributes = Field(default_factory=dict)
    topics: list[Slug] = Field(
        default_factory=list, max_length=100, description="Topics to add (none is removed)."
    )


class TopicsChange(Schema):
    add: list[Slug] = Field(default_factory=list, max_length=100)
    remove: list[Slug] = Field(default_factory=list, max_length=100)


class SubscriberPatch(Schema):
    email: Email | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    language: Language | None = None
    timezone: TimeZone | None = None
    attributes: Attributes | None = Field(
        None, description="Merged into the current ones; a null value removes the attribute."
    )
    topics: TopicsChange | None = None
    status: Literal["active", "unsubscribed"] | None = Field(
        None,
        description="`unsubscribed` takes them off every topic and suppresses the address; "
        "`active` confirms an unconfirmed subscriber (never brings back one who left).",
    )


class UpsertResult(Schema):
    created: bool
    subscriber: SubscriberOut


class BulkUpsert(BaseModel):
    subscribers: list[SubscriberUpsert] = Field(min_length=1, max_length=10_000)
    topics: list[Slug] = Field(
        default_factory=list, max_length=100, description="Added to every subscriber."
    )
    update_existing: bool = True


class BulkRejection(Schema):
    index: int
    email: str
    reason: str


class BulkResult(Schema):
    created: int
    updated: int
    unchanged: int
    suppressed: int
    rejected: list[BulkRejection]


class Message(Schema):
    message: str


class TopicOut(Schema):
    id: int
    slug: str
    name: str
    public_name: str
    description: str
    created_at: dt.datetime


class TopicIn(Schema):
    slug: Slug
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
    public_name: Annotated[str, StringConstraints(max_length=150, pattern=r"^[^\x00]*$")] = ""
    description: Annotated[str, StringConstraints(max_length=5000, pattern=r"^[^\x00]*$")] = ""


class CustomFieldOut(Schema):
    id: int
    key: str
    label: str
    type: str
    choices: list[Any]
    created_at: dt.datetime


class CustomFieldIn(Schema):
    label: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
    type: Literal["text", "number", "date", "boolean"] = "text"


class SuppressionOut(Schema):
    id: int
    email: str = Field(description="Empty when the person was erased (only a hash is kept).")
    reason: str
    note: str
    created_at: dt.datetime


class SuppressionPage(Page):
    data: list[SuppressionOut]


class SuppressionIn(Schema):
    email: Email
    note: Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00]*$")] = ""
