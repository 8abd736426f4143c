"""The fields a merge tag may name, and the per-recipient context that fills them.

Newsletters may only use these fields; a canned reply may also use ad-hoc fields (any other
plain name, such as ``{{ topic }}``) that the sender fills in when replying.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from django.db.models import Exists, Expression, OuterRef, Q

from subscribers.models import CustomField, Subscriber, Subscription

# What a recipient's own data fills: names, address, language code, and the names of the
# topics they are subscribed to ("Product news, Weekly"); custom attributes are attr.<key>.
SUBSCRIBER_FIELDS = ("first_name", "last_name", "email", "language", "topics")
URL_FIELDS = ("unsubscribe_url", "preferences_url", "view_in_browser_url")
ATTRIBUTE_PREFIX = "attr."
# The sender's identity (settings.COMPANY_*): substituted once at compile time, anywhere.
COMPANY_FIELDS = ("company_name", "company_postal_address")
# Only a layout may use these: where the body, preheader and subject go.
LAYOUT_FIELDS = ("content", "preheader", "subject")


def known_fields() -> list[str]:
    """What the linter accepts in a newsletter (``attr.<key>`` stands for any custom key)."""
    return [*SUBSCRIBER_FIELDS, ATTRIBUTE_PREFIX + "<key>", *URL_FIELDS, *COMPANY_FIELDS]


def is_known_field(path: str) -> bool:
    if path in SUBSCRIBER_FIELDS or path in URL_FIELDS or path in COMPANY_FIELDS:
        return True
    return path.startswith(ATTRIBUTE_PREFIX) and path.count(".") == 1


def is_recipient_data(path: str) -> bool:
    """Fields that come from the subscriber row (and so may be empty for some recipients)."""
    return path in SUBSCRIBER_FIELDS or path.startswith(ATTRIBUTE_PREFIX)


def adhoc_fields(paths: Iterable[str]) -> list[str]:
    """The canned-reply fields the sender must fill: every plain name that is not known."""
    seen: list[str] = []
    for path in paths:
        if not is_known_field(path) and "." not in path and path not in seen:
            seen.append(path)
    return seen


# --- the recipient's merge values: ONE place builds them -------------------------------------
#
# The preview, the test send, the pre-flight, the sending pipeline and transactional mail all
# take a recipient's values from here, so what a marketer previews is what recipients get.


def recipient_contexts(subscriber_ids: Iterable[int]) -> dict[int, dict]:
    """The merge values of each subscriber, by id, in three queries however many there are
    (subscribers, custom field types, active topics). Ids with no subscriber are left out."""
    ids = sorted({int(pk) for pk in subscriber_ids})
    if not ids:
        return {}
    rows = Subscriber.objects.filter(pk__in=ids).values_list(
        "pk", "email", "first_name", "last_name", "language", "attributes"
    )
    return _contexts(list(rows))


def recipient_context(subscriber=None, *, email: str = "") -> dict:
    """One recipient's merge values: a Subscriber as it is in memory (saved or not), or just
    an address (a seed address that is nobody on the list)."""
    row = (
        getattr(subscriber, "pk", None),
        getattr(subscriber, "email", "") or email,
        getattr(subscriber, "first_name", ""),
        getattr(subscriber, "last_name", ""),
        getattr(subscriber, "language", ""),
        getattr(subscriber, "attributes", None),
    )
    return _contexts([row])[row[0]]


def _contexts(rows: list[tuple]) -> dict:
    types = (
        dict(CustomField.objects.values_list("key", "type")) if any(row[5] for row in rows) else {}
    )
    topics: dict[int, list[str]] = {}
    saved = [row[0] for row in rows if row[0]]
    if saved:
        for subscriber_id, public_name, name in (
            Subscription.objects.filter(subscriber_id__in=saved, status=Subscription.Status.ACTIVE)
            .order_by("topic__name", "topic_id")
            .values_list("subscriber_id", "topic__public_name", "topic__name")
        ):
            topics.setdefault(subscriber_id, []).append(public_name or name)
    out = {}
    for pk, address, first_name, last_name, language, attributes in rows:
        attributes = attributes if isinstance(attributes, dict) else {}
        attr = {}
        for key, value in attributes.items():
            text = attribute_text(value, types.get(key, ""))
            if text is not None:
                attr[key] = text
        out[pk] = {
            "first_name": first_name or "",
            "last_name": last_name or "",
            "email": address or "",
            "language": language or "",
            "topics": ", ".join(topics.get(pk, [])),
            "attr": attr,
        }
    return out


_YES = {"true", "yes", "y", "1", "on"}
_NO = {"false", "no", "n", "0", "off"}


def attribute_text(value, kind: str = "") -> str | None:
    """How a custom attribute reads in a message, by its CustomField type (None: empty).

    Stored values are typed JSON (subscribers.services.attribute_coerce): text and choice as
    strings, numbers as numbers (no "12.0"), dates as YYYY-MM-DD, yes/no as booleans, which
    read "yes" / "no" (``|capfirst`` gives "Yes"). A structure never reaches a message.
    """
    if value is None or isinstance(value, dict | list):
        return None
    if kind == "boolean" and isinstance(value, str) and value.strip().lower() in _YES | _NO:
        value = value.strip().lower() in _YES
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return str(value)


def recipient_empty_q(path: str) -> Q | Expression | None:
    """Which subscribers get an empty ``path`` (as recipient_context fills it), for counting
    over a whole audience in SQL; None for a path that is no recipient data."""
    if path.startswith(ATTRIBUTE_PREFIX) and path.count(".") == 1:
        key = path[len(ATTRIBUTE_PREFIX) :]
        return (
            ~Q(attributes__has_key=key)
            | Q(**{f"attributes__{key}": ""})
            | Q(**{f"attributes__{key}": None})
        )
    if path == "topics":
        active = Subscription.objects.filter(
            subscriber_id=OuterRef("pk"), status=Subscription.Status.ACTIVE
        )
        return ~Exists(active)
    if path in SUBSCRIBER_FIELDS:
        return Q(**{path: ""})
    return None


def subscriber_context(
    subscriber=None,
    *,
    email: str = "",
    unsubscribe_url: str = "",
    preferences_url: str = "",
    view_in_browser_url: str = "",
    link_urls: list[str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict:
    """A plain dict for ``CompiledMessage.render``: never pass model instances to a render."""
    context = {
        **recipient_context(subscriber, email=email),
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
        "view_in_browser_url": view_in_browser_url,
        "link_urls": link_urls or [],
    }
    if extra:
        for key, value in extra.items():
            if key not in context:
                context[key] = value
    return context


SAMPLE_CONTEXT: dict[str, Any] = {
    "first_name": "Camille",
    "last_name": "Martin",
    "email": "camille.martin@example.com",
    "language": "fr",
    "topics": "Product news, Weekly digest",
    "attr": {"company": "Example & Co", "city": "Lyon", "plan": "pro"},
    "unsubscribe_url": "https://example.com/unsubscribe/sample",
    "preferences_url": "https://example.com/preferences/sample",
    "view_in_browser_url": "https://example.com/view/sample",
    "link_urls": [],
}
