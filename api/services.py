"""Writes of the API that have no dashboard twin: set-based upserts, patches under ETags.

Everything else goes straight to the apps' own services (subscribers.services,
signup.services, campaigns.services ...)."""

import ipaddress
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from signup.models import SignupForm
from signup.protection import address_key, email_check, rate_hit
from signup.schema import form_layout, step_validate, texts
from signup.services import Origin, signup_continue, signup_start
from subscribers.emails import EmailError, email_normalize
from subscribers.models import (
    ConsentRecord,
    CustomField,
    Subscriber,
    Topic,
)
from subscribers.services import (
    attribute_coerce,
    attribute_text_coercer,
    consent_record,
    is_suppressed,
    subscriber_create,
    subscriber_unsubscribe,
    subscriber_update,
    topic_subscribe,
    topic_unsubscribe,
)
from webhooks import emit as webhooks_emit

from .errors import ApiError
from .selectors import etag_of, subscriber_out_of_row

if TYPE_CHECKING:  # the API's request schemas (api.subscribers imports this module)
    from .schemas import SubscriberUpsert
    from .subscribers import SubscriberCreate, SubscriberPatch


def topics_by_slug(slugs: Iterable[str], *, field: str = "topics") -> list[Topic]:
    wanted = list(dict.fromkeys(slugs))
    if not wanted:
        return []
    found = {t.slug: t for t in Topic.objects.filter(slug__in=wanted)}
    missing = [slug for slug in wanted if slug not in found]
    if missing:
        raise ApiError(422, f"{field}: no topic {missing[0]!r}.", field=field)
    return [found[slug] for slug in wanted]


def attributes_coerce(
    attributes: dict, *, fields: dict[str, CustomField] | None = None, field: str = "attributes"
) -> dict:
    """Typed values, as the dashboard form and the import store them; an attribute with no
    custom field is refused (define it first: POST /fields). A null value stays null (for a
    patch: removes it)."""
    if fields is None:
        fields = {f.key: f for f in CustomField.objects.filter(key__in=list(attributes))}
    typed = {}
    for key, raw in attributes.items():
        definition = fields.get(key)
        if definition is None:
            raise ApiError(
                422,
                f"{field}.{key}: no custom field {key!r} (create it first).",
                field=f"{field}.{key}",
            )
        try:
            typed[key] = attribute_coerce(field=definition, raw=raw)
        except ValueError as exc:
            raise ApiError(422, str(exc), field=f"{field}.{key}") from None
    return typed


def _email(raw: str, field: str = "email") -> str:
    try:
        return email_normalize(raw)
    except EmailError as exc:
        raise ApiError(422, str(exc), field=field) from None


def api_subscriber_create(*, data: "SubscriberCreate", key_name: str) -> Subscriber:
    email = _email(data.email)
    if is_suppressed(email):
        raise ApiError(
            409,
            "This address is suppressed (unsubscribed, bounced, complained or erased): only "
            "the person can bring it back, by signing up (POST /signups).",
            code="suppressed",
            field="email",
        )
    if data.status == Subscriber.Status.ACTIVE and data.consent is None:
        raise ApiError(
            422,
            "consent: an active subscriber needs the consent they gave (text, version); "
            "without it, sign them up with double opt-in (POST /signups).",
            field="consent",
        )
    attributes = {k: v for k, v in attributes_coerce(data.attributes).items() if v is not None}
    topics = topics_by_slug(data.topics)
    with transaction.atomic():
        try:
            subscriber = subscriber_create(
                email=email,
                first_name=data.first_name,
                last_name=data.last_name,
                attributes=attributes,
                status=data.status,
                source=Subscriber.Source.API,
                source_detail=f"api:{key_name}"[:100],
                language=data.language,
                topics=topics,
            )
        except EmailError as exc:
            raise ApiError(409, str(exc), code="exists", field="email") from None
        if data.timezone:
            subscriber_update(subscriber=subscriber, timezone=data.timezone)
        if data.consent is not None:
            consent_record(
                subscriber=subscriber,
                text=data.consent.text,
                version=data.consent.version,
                where=ConsentRecord.Where.API,
                ip=ip_or_none(data.consent.ip, field="consent.ip"),
                user_agent=data.consent.user_agent,
            )
    return subscriber


def ip_or_none(value: str | None, *, field: str) -> str | None:
    """An IP address as the API received it, normalized; a 422 naming ``field`` if it is not
    one."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ApiError(422, f"{field}: not an IP address.", field=field) from None


def api_subscriber_patch(
    *, subscriber_id: int, data: "SubscriberPatch", if_match: str | None
) -> Subscriber:
    """Change a subscriber under its ETag (If-Match): 412 when it changed meanwhile."""
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().filter(pk=subscriber_id).first()
        if subscriber is None:
            raise ApiError(404, f"No subscriber {subscriber_id}.")
        if if_match is not None and if_match.strip() not in (
            "*",
            etag_of(subscriber.updated_at, subscriber.pk),
        ):
            raise ApiError(
                412,
                "The subscriber changed since you read it (If-Match does not match its ETag): "
                "read it again and retry.",
                field="If-Match",
            )
        if subscriber.erased_at is not None:
            raise ApiError(409, "This subscriber was erased.", code="erased")
        changes: dict = {}
        for name in ("first_name", "last_name", "language", "timezone"):
            value = getattr(data, name)
            if value is not None:
                changes[name] = value
        if data.email is not None:
            changes["email"] = _email(data.email)
        if data.attributes is not None:
            typed = attributes_coerce(data.attributes)
            merged = {**(subscriber.attributes or {}), **typed}
            changes["attributes"] = {k: v for k, v in merged.items() if v is not None}
        if changes:
            try:
                subscriber_update(subscriber=subscriber, **changes)
            except EmailError as exc:
                raise ApiError(409, str(exc), code="exists", field="email") from None
        if data.topics is not None:
            for topic in topics_by_slug(data.topics.add, field="topics.add"):
                topic_subscribe(subscriber=subscriber, topic=topic)
            for topic in topics_by_slug(data.topics.remove, field="topics.remove"):
                topic_unsubscribe(subscriber=subscriber, topic=topic)
        if data.status == Subscriber.Status.UNSUBSCRIBED:
            if subscriber.status != Subscriber.Status.UNSUBSCRIBED:
                subscriber_unsubscribe(subscriber=subscriber, source="api")
        elif data.status == Subscriber.Status.ACTIVE and subscriber.status != data.status:
            if subscriber.status != Subscriber.Status.UNCONFIRMED or is_suppressed(
                subscriber.email
            ):
                raise ApiError(
                    409,
                    f"A {subscriber.status} subscriber cannot be made active through the API: "
                    "they must sign up again themselves.",
                    code="status",
                    field="status",
                )
            subscriber.status = Subscriber.Status.ACTIVE
            subscriber.confirmed_at = timezone.now()
            subscriber.save(update_fields=["status", "confirmed_at", "updated_at"])
        # Any change moves the ETag, even one that touched only the subscriptions.
        Subscriber.objects.filter(pk=subscriber.pk).update(updated_at=timezone.now())
    return subscriber


# --- set-based upsert ------------------------------------------------------------------------

# The statement itself lives in a PL/pgSQL function (api/migrations/0002_upsert_function.py,
# 0003), so that PostgreSQL plans it once per connection: in one statement, suppressed
# addresses are left alone, existing people updated where something changed, new ones inserted
# (unconfirmed, ON CONFLICT DO NOTHING against a concurrent insert), the topics subscribed,
# and one row returned per address with its outcome.
UPSERT_SQL = (
    "SELECT out_id, out_email, out_outcome FROM api_subscribers_upsert("
    "%(rows)s::jsonb, %(detail)s, %(now)s, %(update_existing)s)"
)
# One row (POST /subscribers/upsert): the same statement, then the subscriber as the API shows
# it, in one call (api 0003).
UPSERT_ONE_SQL = "SELECT * FROM api_subscriber_upsert(%(row)s::jsonb, %(detail)s, %(now)s)"

# The custom fields and topics an upsert names, in one round trip (plain cursor: every single
# upsert asks, and the ORM's compilation cost more than the query).
_DEFINITIONS_SQL = (
    "SELECT 'field', key, type, choices::text FROM subscribers_customfield "
    "WHERE key = ANY(%(keys)s) "
    "UNION ALL SELECT 'topic', slug, id::text, NULL FROM subscribers_topic "
    "WHERE slug = ANY(%(slugs)s)"
)


@dataclass(frozen=True)
class _Definitions:
    fields: dict[str, CustomField]
    topics: dict[str, int]  # slug -> id
    coercers: dict[str, Callable[[str], Any]]


def _definitions(*, keys: Iterable[str], slugs: Iterable[str]) -> _Definitions:
    keys, slugs = sorted(set(keys)), sorted(set(slugs))
    fields: dict[str, CustomField] = {}
    topics: dict[str, int] = {}
    if keys or slugs:
        with connection.cursor() as cursor:
            cursor.execute(_DEFINITIONS_SQL, {"keys": keys, "slugs": slugs})
            for kind, name, value, choices in cursor.fetchall():
                if kind == "field":
                    fields[name] = CustomField(key=name, type=value, choices=json.loads(choices))
                else:
                    topics[name] = int(value)
    # Resolved once per field, not once per value (a bulk call has up to 10,000 rows).
    coercers = {key: attribute_text_coercer(field) for key, field in fields.items()}
    return _Definitions(fields=fields, topics=topics, coercers=coercers)


def _upsert_row(row: "SubscriberUpsert", *, known: _Definitions, common: list[int]) -> dict:
    """One row as the upsert statement takes it (address normalized, attributes typed), or the
    ApiError saying what is wrong with it."""
    email = _email(row.email)
    attributes = {}
    for key, raw in row.attributes.items():
        definition = known.fields.get(key)
        if definition is None:
            raise ApiError(
                422,
                f"attributes.{key}: no custom field {key!r} (create it first).",
                field=f"attributes.{key}",
            )
        try:
            if isinstance(raw, str) and raw.strip():
                value = known.coercers[key](raw)
            else:
                value = attribute_coerce(field=definition, raw=raw)
        except ValueError as exc:
            raise ApiError(422, str(exc), field=f"attributes.{key}") from None
        if value is not None:
            attributes[key] = value
    unknown = [s for s in row.topics if s not in known.topics]
    if unknown:
        raise ApiError(422, f"no topic {unknown[0]!r}")
    return {
        "email": email,
        "first_name": row.first_name or "",
        "last_name": row.last_name or "",
        "language": row.language or "",
        "timezone": row.timezone or "",
        "has_first": row.first_name is not None,
        "has_last": row.last_name is not None,
        "has_language": row.language is not None,
        "has_timezone": row.timezone is not None,
        "attributes": attributes,
        "topics": sorted({*common, *(known.topics[s] for s in row.topics)}),
    }


def subscribers_upsert(
    *,
    rows: "list[SubscriberUpsert]",
    topics: list[str] | tuple = (),
    update_existing: bool = True,
    key_name: str = "",
) -> dict:
    """Create or update subscribers by address, in one statement whatever their number.

    Every row is checked first (address, attribute types, topics) and a bad row is reported,
    not fatal. Suppressed addresses are left alone, as the CSV import does (a person who left
    comes back only by signing up). New people are unconfirmed: an upsert never activates.
    Returns {created, updated, unchanged, suppressed, rejected: [...],
    ids: {email: (id, "created" | "updated" | "unchanged")}}.
    """
    known = _definitions(
        keys=(key for row in rows for key in row.attributes),
        slugs=[*topics, *(slug for row in rows for slug in row.topics)],
    )
    missing = [slug for slug in topics if slug not in known.topics]
    if missing:
        raise ApiError(422, f"topics: no topic {missing[0]!r}.", field="topics")
    common = [known.topics[s] for s in topics]
    rejected: list[dict] = []
    accepted: dict[str, dict] = {}
    for index, row in enumerate(rows):
        try:
            prepared = _upsert_row(row, known=known, common=common)
        except ApiError as exc:
            rejected.append({"index": index, "email": row.email[:254], "reason": exc.message})
            continue
        email = prepared["email"]
        if email in accepted:
            rejected.append(
                {
                    "index": index,
                    "email": email,
                    "reason": f"duplicate of index {accepted[email]['index']}",
                }
            )
            continue
        accepted[email] = {"index": index, **prepared}
    ids: dict[str, tuple[int, str]] = {}
    if accepted:
        # One statement: atomic on its own.
        with connection.cursor() as cursor:
            cursor.execute(
                UPSERT_SQL,
                {
                    "rows": json.dumps(list(accepted.values())),
                    "detail": f"api:{key_name}"[:100],
                    "now": timezone.now(),
                    "update_existing": update_existing,
                },
            )
            for pk, email, outcome in cursor.fetchall():
                ids[email] = (pk, outcome)
        _emit_changes(ids.values())
    outcomes = [outcome for _, outcome in ids.values()]
    suppressed = outcomes.count("suppressed")
    created, updated = outcomes.count("created"), outcomes.count("updated")
    return {
        "created": created,
        "updated": updated,
        # Unchanged, erased (left alone), or inserted meanwhile by a concurrent request.
        "unchanged": len(accepted) - created - updated - suppressed,
        "suppressed": suppressed,
        "rejected": rejected,
        "ids": ids,
    }


def subscriber_upsert(*, row: "SubscriberUpsert", key_name: str) -> tuple[str, dict | None]:
    """One subscriber created or updated by address, as ``subscribers_upsert`` does for many,
    and read back in the same call: (outcome, the subscriber as ``selectors.subscriber_out``
    shows them). The outcome is "created", "updated", "unchanged" (also: inserted meanwhile by
    a concurrent request) or "suppressed" (left alone, no subscriber); a row that does not
    validate raises the API's 422 naming what is wrong."""
    known = _definitions(keys=row.attributes, slugs=row.topics)
    try:
        prepared = _upsert_row(row, known=known, common=[])
    except ApiError as exc:
        # As the bulk endpoint reports a rejected row: its reason.
        raise ApiError(
            422, exc.message, field="email" if "email" in exc.message else None
        ) from None
    with connection.cursor() as cursor:
        cursor.execute(
            UPSERT_ONE_SQL,
            {
                "row": json.dumps(prepared),
                "detail": f"api:{key_name}"[:100],
                "now": timezone.now(),
            },
        )
        found = cursor.fetchone()
    if found is None:  # deleted meanwhile
        return "unchanged", None
    outcome, *values = found
    if outcome == "suppressed":
        return outcome, None
    _emit_changes([(values[0], outcome)])
    return outcome, subscriber_out_of_row(values)


def _emit_changes(outcomes: Iterable[tuple[int, str]]) -> None:
    """subscriber.created / subscriber.updated for the people an upsert created or changed, as
    the dashboard's and POST /subscribers' writes emit them (in the caller's transaction;
    nothing but one cache read when no endpoint listens)."""
    by_kind: dict[str, list[int]] = {"created": [], "updated": []}
    for pk, outcome in outcomes:
        if outcome in by_kind:
            by_kind[outcome].append(pk)
    for outcome, ids in by_kind.items():
        if ids:
            webhooks_emit.subscribers_changed(f"subscriber.{outcome}", ids)


# --- sign-up through the API -----------------------------------------------------------------


def api_signup_submit(*, public_id: str, fields: dict, origin: Origin, key_name: str) -> dict:
    """A person's sign-up sent by a backend, through a signup form and the same services as
    the form's own submissions: every step's fields validated by the form's schema, the
    address checked (syntax, the form's disposable and DNS rules), the per-IP and per-address
    rate limits, then ``signup_start`` / ``signup_continue``: the form's double opt-in (the
    confirmation email, at most one per address per window), consent text and version,
    pending answers for a confirmed person. The browser-only checks (form token, fill time,
    honeypot, proof of work) are what the API key stands for here."""
    form = SignupForm.objects.filter(public_id=public_id, is_active=True).first()
    if form is None:
        raise ApiError(404, f"No active signup form {public_id!r}.", field="form")
    layout = form_layout(form)
    words = texts(form.language)
    steps = []
    for step in layout:
        answers, errors = step_validate(step["fields"], fields, language=form.language)
        if errors:
            name, message = next(iter(errors.items()))
            raise ApiError(422, f"fields.{name}: {message}", field=f"fields.{name}")
        steps.append(answers)
    email, problem = email_check(
        steps[0].email, reject_disposable=form.reject_disposable, check_dns=form.check_dns
    )
    if problem:
        raise ApiError(422, f"fields.email: {words[problem]}", field="fields.email")
    if origin.ip and not rate_hit(
        f"ip:{origin.ip}", limit=settings.SIGNUP_RATE_PER_IP, window=settings.SIGNUP_RATE_IP_WINDOW
    ):
        raise ApiError(
            429,
            "Too many sign-ups from this person's IP address: try again later.",
            headers={"Retry-After": str(settings.SIGNUP_RATE_IP_WINDOW)},
        )
    if not rate_hit(
        f"address:{address_key(email)}",
        limit=settings.SIGNUP_RATE_PER_ADDRESS,
        window=settings.SIGNUP_RATE_ADDRESS_WINDOW,
    ):
        raise ApiError(
            429,
            "Too many sign-ups for this address: try again later.",
            headers={"Retry-After": str(settings.SIGNUP_RATE_ADDRESS_WINDOW)},
        )
    last = len(layout) - 1
    signup = signup_start(form=form, email=email, step=steps[0], origin=origin, last_step=last == 0)
    for index in range(1, len(layout)):
        signup = signup_continue(
            signup=signup, step_index=index, step=steps[index], last_step=index == last
        )
    signup.refresh_from_db()
    return {
        "signup_id": signup.pk,
        "subscriber_id": signup.subscriber_id,
        "status": "active" if signup.confirmed_at else "pending_confirmation",
        "double_opt_in": form.double_opt_in,
        "confirmation_sent": signup.confirmation_sent_at is not None,
    }
