"""Writes on the audience: subscribers, topics, suppressions, consent and GDPR."""

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.text import slugify

from core.erasure import scrub
from webhooks import emit as webhooks_emit

from .emails import EmailError, email_normalize
from .models import (
    ConsentRecord,
    CustomField,
    ImportRejection,
    Subscriber,
    Subscription,
    Suppression,
    Topic,
    email_hash,
)
from .selectors import TIMELINE_SOURCES, subscriber_timeline, subscribers_with_email


def _number_from_text(key: str, raw: str) -> int | float:
    text = raw.strip().replace(",", ".") if raw.count(",") == 1 else raw
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{key}: {raw!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{key}: {raw!r} is not a number")
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _date_from_text(key: str, raw: str) -> str:
    try:
        return dt.date.fromisoformat(raw.strip()).isoformat()
    except ValueError:
        raise ValueError(f"{key}: {raw!r} is not a date (YYYY-MM-DD)") from None


_TRUE = frozenset(("true", "yes", "1", "y", "on"))
_FALSE = frozenset(("false", "no", "0", "n", "off"))


def _boolean_from_text(key: str, raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{key}: {raw!r} is not yes/no")


def _text_from_text(key: str, raw: str) -> str:
    text = raw.strip()
    if len(text) > 1000:
        raise ValueError(f"{key}: longer than 1000 characters")
    return text


def attribute_text_coercer(field: CustomField) -> Callable[[str], Any]:
    """attribute_coerce for one field and a non-blank string, resolved once: the CSV import
    calls it for every cell of a million rows."""
    key = field.key
    if field.type == CustomField.Type.NUMBER:
        return lambda raw: _number_from_text(key, raw)
    if field.type == CustomField.Type.DATE:
        return lambda raw: _date_from_text(key, raw)
    if field.type == CustomField.Type.BOOLEAN:
        return lambda raw: _boolean_from_text(key, raw)
    if field.type == CustomField.Type.CHOICE:
        choices = tuple(field.choices)
        listed = ", ".join(field.choices)

        def choice(raw: str) -> str:
            text = raw.strip()
            if text not in choices:
                raise ValueError(f"{key}: {raw!r} is not one of {listed}")
            return text

        return choice
    return lambda raw: _text_from_text(key, raw)


def attribute_coerce(*, field: CustomField, raw: Any) -> Any:
    """The typed JSON value of a custom attribute, or ValueError with a readable reason."""
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None
    if field.type == CustomField.Type.NUMBER:
        if isinstance(raw, bool):
            raise ValueError(f"{field.key}: {raw!r} is not a number")
        if isinstance(raw, int | float):
            return raw
    elif field.type == CustomField.Type.DATE:
        if isinstance(raw, dt.date):
            return raw.isoformat()
    elif field.type == CustomField.Type.BOOLEAN and isinstance(raw, bool):
        return raw
    return attribute_text_coercer(field)(str(raw))


class CustomFieldError(ValueError):
    """A custom field that cannot be made as asked (the message says why, for the marketer)."""


# Types a field made on the spot can take (a choice field needs its list of choices: made on
# the custom fields page).
ON_THE_SPOT_TYPES = (
    CustomField.Type.TEXT,
    CustomField.Type.NUMBER,
    CustomField.Type.DATE,
    CustomField.Type.BOOLEAN,
)


def custom_field_key(label: str) -> str:
    """The key a label gets: what merge tags can name (``{{ attr.company_size }}``)."""
    key = re.sub(r"[^a-z0-9]+", "_", slugify(label).lower()).strip("_")[:50]
    if not key or key[0].isdigit():
        key = f"field_{key}"[:50].rstrip("_")
    return key


def custom_field_create(*, label: str, type: str) -> CustomField:
    """A new custom field named ``label`` (its key made from it). Refused when the label is
    empty, the type is not one of ON_THE_SPOT_TYPES, or a field already has that key."""
    label = " ".join(label.split())[:100]
    if not label:
        raise CustomFieldError("Give the new field a name.")
    if type not in ON_THE_SPOT_TYPES:
        raise CustomFieldError("Choose a type for the new field.")
    key = custom_field_key(label)
    existing = CustomField.objects.filter(key=key).first()
    if existing is not None:
        raise CustomFieldError(
            f"A field “{existing.label}” ({key}) exists already: choose it in the list."
        )
    try:
        with transaction.atomic():  # a savepoint: a concurrent twin leaves the caller usable
            return CustomField.objects.create(key=key, label=label, type=type)
    except IntegrityError:
        raise CustomFieldError(f"A field with the key {key} exists already.") from None


def subscriber_create(
    *,
    email: str,
    first_name: str = "",
    last_name: str = "",
    attributes: dict | None = None,
    status: str = Subscriber.Status.UNCONFIRMED,
    source: str = Subscriber.Source.MANUAL,
    source_detail: str = "",
    language: str = "en",
    topics: list[Topic] | tuple = (),
) -> Subscriber:
    """Create one subscriber (EmailError if the address is invalid or already present)."""
    normalized = email_normalize(email)
    if subscribers_with_email(normalized).exists():
        raise EmailError(f"{normalized} is already a subscriber")
    with transaction.atomic():
        subscriber = Subscriber.objects.create(
            email=normalized,
            first_name=first_name,
            last_name=last_name,
            attributes=attributes or {},
            status=status,
            source=source,
            source_detail=source_detail,
            language=language,
            confirmed_at=timezone.now() if status == Subscriber.Status.ACTIVE else None,
        )
        for topic in topics:
            topic_subscribe(subscriber=subscriber, topic=topic)
        webhooks_emit.subscribers_changed("subscriber.created", [subscriber.pk])
    return subscriber


def subscriber_update(*, subscriber: Subscriber, **fields: Any) -> Subscriber:
    allowed = {"first_name", "last_name", "attributes", "language", "timezone", "email"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"Cannot update {', '.join(sorted(unknown))}")
    if "email" in fields:
        fields["email"] = email_normalize(fields["email"])
        clash = subscribers_with_email(fields["email"]).exclude(pk=subscriber.pk)
        if clash.exists():
            raise EmailError(f"{fields['email']} is already a subscriber")
    for name, value in fields.items():
        setattr(subscriber, name, value)
    with transaction.atomic():
        subscriber.save()
        webhooks_emit.subscribers_changed("subscriber.updated", [subscriber.pk])
    return subscriber


def suppression_add(*, email: str, reason: str, note: str = "", event: str = "") -> Suppression:
    """Suppress an address (idempotent: the first reason is kept, the address is filled in)."""
    if reason not in Suppression.Reason.values:
        raise ValueError(f"Unknown suppression reason {reason!r}")
    address = email.strip().lower()
    suppression, created = Suppression.objects.get_or_create(
        email_hash=email_hash(address),
        defaults={"email": address, "reason": reason, "note": note[:255], "event": event[:100]},
    )
    if not created and not suppression.email and reason != Suppression.Reason.ERASED:
        suppression.email = address
        suppression.save(update_fields=["email"])
    return suppression


def suppressions_add(items: list[tuple[str, str, str, str]]) -> int:
    """Set-based ``suppression_add`` for feedback batches: (email, reason, note, event) rows,
    one statement; the same rules (the first reason is kept, a missing address is filled in
    unless the row records an erasure). Returns how many rows are new."""
    rows: dict[str, tuple] = {}
    for email, reason, note, event in items:
        if reason not in Suppression.Reason.values:
            raise ValueError(f"Unknown suppression reason {reason!r}")
        address = email.strip().lower()
        rows.setdefault(email_hash(address), (address, reason, note[:255], event[:100]))
    if not rows:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO subscribers_suppression (email_hash, email, reason, note, event, created_at)
            SELECT h, e, r, n, ev, now()
            FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])
              AS t(h, e, r, n, ev)
            ON CONFLICT (email_hash) DO UPDATE SET email = EXCLUDED.email
              WHERE subscribers_suppression.email = ''
                AND subscribers_suppression.reason <> 'erased'
            RETURNING (xmax = 0)
            """,
            [
                list(rows),
                [v[0] for v in rows.values()],
                [v[1] for v in rows.values()],
                [v[2] for v in rows.values()],
                [v[3] for v in rows.values()],
            ],
        )
        return sum(1 for (inserted,) in cursor.fetchall() if inserted)


def suppression_lift(*, email: str) -> bool:
    """Remove a suppression when the person signs up again themselves (forms call this)."""
    deleted, _ = Suppression.objects.filter(email_hash=email_hash(email)).delete()
    return bool(deleted)


def is_suppressed(email: str) -> bool:
    return Suppression.objects.filter(email_hash=email_hash(email)).exists()


def subscriber_unsubscribe(*, subscriber: Subscriber, source: str) -> None:
    """Unsubscribe from everything: status unsubscribed, topics off, address suppressed."""
    now = timezone.now()
    with transaction.atomic():
        Subscriber.objects.filter(pk=subscriber.pk).update(
            status=Subscriber.Status.UNSUBSCRIBED, updated_at=now
        )
        subscriber.status = Subscriber.Status.UNSUBSCRIBED
        subscriber.subscriptions.filter(status=Subscription.Status.ACTIVE).update(
            status=Subscription.Status.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now
        )
        suppression_add(
            email=subscriber.email,
            reason=Suppression.Reason.UNSUBSCRIBED,
            event=source,
        )
        webhooks_emit.subscribers_changed("subscriber.unsubscribed", [subscriber.pk])


def topic_subscribe(*, subscriber: Subscriber, topic: Topic) -> Subscription:
    subscription, created = Subscription.objects.get_or_create(subscriber=subscriber, topic=topic)
    if not created and subscription.status != Subscription.Status.ACTIVE:
        subscription.status = Subscription.Status.ACTIVE
        subscription.unsubscribed_at = None
        subscription.save(update_fields=["status", "unsubscribed_at", "updated_at"])
    return subscription


def topic_unsubscribe(*, subscriber: Subscriber, topic: Topic) -> None:
    Subscription.objects.filter(
        subscriber=subscriber, topic=topic, status=Subscription.Status.ACTIVE
    ).update(
        status=Subscription.Status.UNSUBSCRIBED,
        unsubscribed_at=timezone.now(),
        updated_at=timezone.now(),
    )


def consent_record(
    *,
    subscriber: Subscriber,
    text: str,
    version: str,
    where: str,
    ip: str | None = None,
    user_agent: str = "",
) -> ConsentRecord:
    if where not in ConsentRecord.Where.values:
        raise ValueError(f"Unknown consent place {where!r}")
    return ConsentRecord.objects.create(
        subscriber=subscriber,
        text=text,
        version=version,
        where=where,
        ip=ip or None,
        user_agent=(user_agent or "")[:500],
    )


def subscriber_export(*, subscriber: Subscriber) -> dict:
    """Everything held about one person, JSON-serialisable (GDPR access request)."""

    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None

    data = {
        "profile": {
            "email": subscriber.email,
            "first_name": subscriber.first_name,
            "last_name": subscriber.last_name,
            "status": subscriber.status,
            "source": subscriber.source,
            "source_detail": subscriber.source_detail,
            "language": subscriber.language,
            "timezone": subscriber.timezone,
            "created_at": iso(subscriber.created_at),
            "updated_at": iso(subscriber.updated_at),
            "confirmed_at": iso(subscriber.confirmed_at),
            "paused_until": iso(subscriber.paused_until),
            "max_campaigns_per_month": subscriber.max_campaigns_per_month,
        },
        "attributes": subscriber.attributes,
        "subscriptions": [
            {
                "topic": s.topic.slug,
                "topic_name": s.topic.display_name,
                "status": s.status,
                "created_at": iso(s.created_at),
                "updated_at": iso(s.updated_at),
                "unsubscribed_at": iso(s.unsubscribed_at),
            }
            for s in subscriber.subscriptions.select_related("topic").order_by("id")
        ],
        "consent_records": [
            {
                "text": c.text,
                "version": c.version,
                "where": c.where,
                "ip": c.ip,
                "user_agent": c.user_agent,
                "created_at": iso(c.created_at),
            }
            for c in subscriber.consent_records.order_by("id")
        ],
        "suppression": None,
        "timeline": [{**item, "at": iso(item["at"])} for item in subscriber_timeline(subscriber)],
    }
    suppression = Suppression.objects.filter(email_hash=email_hash(subscriber.email)).first()
    if suppression:
        data["suppression"] = {
            "reason": suppression.reason,
            "created_at": iso(suppression.created_at),
        }
    for name, exporter in EXPORT_SECTIONS.items():
        data[name] = exporter(subscriber)
    return data


# Later apps add what they hold about a person (campaigns: deliveries, analytics: events):
# EXPORT_SECTIONS["deliveries"] = lambda subscriber: [...JSON-serialisable...]
EXPORT_SECTIONS: dict[str, Any] = {}


def subscriber_erase(*, subscriber: Subscriber) -> None:
    """GDPR erasure: wipe personal data, keep an anonymous row and a suppression hash.

    The row itself stays (anonymised, unsubscribed) so that deliveries and events that point at
    it keep counting in campaign reports; nothing about the person is left on it. The suppression
    keeps only the hash: the address is never mailed again unless they sign up themselves.
    """
    with transaction.atomic():
        address = subscriber.email
        hashed = email_hash(address)
        Suppression.objects.update_or_create(
            email_hash=hashed,
            defaults={"email": "", "reason": Suppression.Reason.ERASED, "note": ""},
        )
        subscriber.consent_records.all().delete()
        now = timezone.now()
        subscriber.subscriptions.update(
            status=Subscription.Status.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now
        )
        subscriber.email = f"erased-{subscriber.pk}@erased.invalid"
        subscriber.first_name = ""
        subscriber.last_name = ""
        subscriber.attributes = {}
        subscriber.status = Subscriber.Status.UNSUBSCRIBED
        subscriber.source_detail = ""
        subscriber.timezone = ""
        subscriber.language = ""
        subscriber.paused_until = None
        subscriber.max_campaigns_per_month = None
        subscriber.erased_at = now
        subscriber.save()
        webhooks_emit.subscribers_changed("subscriber.erased", [subscriber.pk])
        _import_rejections_forget(address)
        # The hooks run after the address is wiped from the row, yet some must find what is
        # keyed by it (test sends, canned replies): they read it from this attribute.
        subscriber.erasing_address = address
        try:
            for eraser in ERASE_HOOKS:
                eraser(subscriber)
        finally:
            del subscriber.erasing_address


def _import_rejections_forget(address: str) -> None:
    """Rejected CSV lines keep the raw row (names, attributes): blank the ones that carry this
    address; the line number stays so the import's report still adds up. The rejection table
    has no address column to index, so this is one scan (erasures are rare)."""
    ImportRejection.objects.filter(raw__icontains=address).update(
        raw="", reason=scrub("reason", address)
    )


# Later apps wipe what they hold (e.g. analytics: IP / user agent of events) without deleting
# the rows that counts rely on: ERASE_HOOKS.append(lambda subscriber: ...). While they run,
# ``subscriber.email`` is already the erased placeholder and ``subscriber.erasing_address`` is
# the address it replaced.
ERASE_HOOKS: list = []


def gdpr_register(
    *,
    export: dict[str, Callable[[Subscriber], Any]],
    erase: Callable[[Subscriber], None] | None = None,
    timeline: Callable[[Subscriber], list[dict]] | None = None,
) -> None:
    """What another app holds about a person, for the export, the erasure and the subscriber
    page's timeline (called from its AppConfig.ready(); a second call adds nothing twice)."""
    EXPORT_SECTIONS.update(export)
    if erase is not None and erase not in ERASE_HOOKS:
        ERASE_HOOKS.append(erase)
    if timeline is not None and timeline not in TIMELINE_SOURCES:
        TIMELINE_SOURCES.append(timeline)


def subscribers_bulk_topic(*, queryset: QuerySet, topic: Topic, add: bool) -> int:
    """Add every subscriber of a selection to a topic (or take them off it), set-based."""
    ids_sql, params = queryset.values("id").query.sql_with_params()
    now = timezone.now()
    with connection.cursor() as cursor:
        if add:
            cursor.execute(
                f"""
                INSERT INTO subscribers_subscription
                    (subscriber_id, topic_id, status, created_at, updated_at)
                SELECT sel.id, %s, 'active', %s, %s FROM ({ids_sql}) sel
                ON CONFLICT (subscriber_id, topic_id) DO UPDATE
                    SET status = 'active', unsubscribed_at = NULL, updated_at = EXCLUDED.updated_at
                    WHERE subscribers_subscription.status <> 'active'
                """,  # noqa: S608 - ids_sql is Django-compiled, params are bound
                [topic.pk, now, now, *params],
            )
        else:
            cursor.execute(
                f"""
                UPDATE subscribers_subscription SET status = 'unsubscribed',
                    unsubscribed_at = %s, updated_at = %s
                WHERE topic_id = %s AND status = 'active'
                  AND subscriber_id IN ({ids_sql})
                """,  # noqa: S608
                [now, now, topic.pk, *params],
            )
        return cursor.rowcount


def subscribers_bulk_suppress(*, queryset: QuerySet, note: str = "", event: str = "") -> int:
    """Suppress every address of a selection (manual reason), set-based."""
    sql, params = queryset.values("email").query.sql_with_params()
    with connection.cursor() as cursor, transaction.atomic():
        cursor.execute(
            f"""
            INSERT INTO subscribers_suppression (email_hash, email, reason, note, event, created_at)
            SELECT encode(sha256(convert_to(lower(sel.email), 'UTF8')), 'hex'), lower(sel.email),
                   'manual', %s, %s, now()
            FROM ({sql}) sel
            ON CONFLICT (email_hash) DO NOTHING
            """,  # noqa: S608
            [note[:255], event[:100], *params],
        )
        return cursor.rowcount


def subscribers_bulk_delete(*, queryset: QuerySet) -> int:
    """Delete a selection, set-based: one statement per relation, never the rows in memory.

    Every app's on_delete rule is honoured by walking the relations Django knows of (CASCADE
    deletes the dependants through their own queryset, SET_NULL clears the column); any other
    rule (PROTECT ...) falls back to the ORM's collector, which enforces it.
    """
    relations = [
        rel
        for rel in Subscriber._meta.related_objects
        if rel.on_delete is not models.DO_NOTHING and not rel.many_to_many
    ]
    if any(rel.on_delete not in (models.CASCADE, models.SET_NULL) for rel in relations):
        with transaction.atomic():
            _, per_model = Subscriber.objects.filter(pk__in=queryset.values("pk")).delete()
        return per_model.get(Subscriber._meta.label, 0)
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        # The selection is fixed first: a filter on topics would otherwise select nobody once
        # the subscriptions are gone.
        cursor.execute("DROP TABLE IF EXISTS bulk_delete_selection")
        cursor.execute("CREATE TEMPORARY TABLE bulk_delete_selection (id bigint) ON COMMIT DROP")
        cursor.execute(f"INSERT INTO bulk_delete_selection (id) {sql}", params)
        selection = RawSQL("SELECT id FROM bulk_delete_selection", [])
        for rel in relations:
            dependants = rel.related_model._base_manager.filter(
                **{f"{rel.field.name}__in": selection}
            )
            if rel.on_delete is models.CASCADE:
                dependants.delete()
            else:
                dependants.update(**{rel.field.name: None})
        deleted = Subscriber._base_manager.filter(pk__in=selection)._raw_delete(connection.alias)
        cursor.execute("DROP TABLE bulk_delete_selection")
    return deleted
