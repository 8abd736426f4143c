"""Absolute, signed, per-recipient URLs for the links every message carries.

The token carries the subscriber id and (when known) the delivery id, signed with a salt per
purpose; the preference center and one-click unsubscribe views read them back with
``read_recipient_token``. Tokens do not expire on their own (links in old emails must keep
working) but they survive a key rotation through SECRET_KEY_FALLBACKS.
"""

from django.conf import settings
from django.urls import reverse

from .tokens import BadToken, make_token, read_token

PREFERENCES = "preferences"
UNSUBSCRIBE = "unsubscribe"


def recipient_token(purpose: str, *, subscriber_id: int, delivery_id: int | None = None) -> str:
    payload = [subscriber_id, delivery_id] if delivery_id else [subscriber_id]
    return make_token(purpose, payload)


def read_recipient_token(purpose: str, token: str) -> tuple[int, int | None]:
    """(subscriber_id, delivery_id or None); raises core.tokens.BadToken."""
    payload = read_token(purpose, token)
    if not isinstance(payload, list) or not payload or not all(isinstance(v, int) for v in payload):
        raise BadToken("unexpected payload")
    return payload[0], (payload[1] if len(payload) > 1 else None)


def preferences_path(*, subscriber_id: int, delivery_id: int | None = None) -> str:
    token = recipient_token(PREFERENCES, subscriber_id=subscriber_id, delivery_id=delivery_id)
    return reverse("preferences:center", args=[token])


def preferences_url(*, subscriber_id: int, delivery_id: int | None = None) -> str:
    return settings.SITE_URL + preferences_path(
        subscriber_id=subscriber_id, delivery_id=delivery_id
    )


def unsubscribe_url(*, subscriber_id: int, delivery_id: int | None = None) -> str:
    """The RFC 8058 one-click URL (List-Unsubscribe header and the footer link)."""
    token = recipient_token(UNSUBSCRIBE, subscriber_id=subscriber_id, delivery_id=delivery_id)
    return settings.SITE_URL + reverse("preferences:unsubscribe", args=[token])
