"""Per-recipient tracking URLs: ids plus a short HMAC, never a raw destination.

A click token is ``<delivery id>.<link id>.<mac>`` and an open token ``<delivery id>.<mac>``
(ids in base 36, mac = 12 bytes of HMAC-SHA256, base64url). One HMAC per link per recipient
costs a few microseconds, which django.core.signing (JSON, zlib, salted key derivation on every
call) does not. The key is derived once from SECRET_KEY; SECRET_KEY_FALLBACKS keep old links
valid after a rotation.
"""

import base64
import hashlib
import hmac
import re
from functools import lru_cache

from django.conf import settings
from django.utils.html import escape

from .models import Link

CLICK_PATH = "/t/c/"  # served by analytics:click
OPEN_PATH = "/t/o/"  # served by analytics:open


class BadTrackingToken(Exception):
    pass


@lru_cache(maxsize=8)
def _key(secret: str) -> bytes:
    return hashlib.sha256(b"nofailmail.tracking." + secret.encode()).digest()


def _keys() -> list[bytes]:
    return [_key(settings.SECRET_KEY)] + [_key(k) for k in settings.SECRET_KEY_FALLBACKS]


def _b36(number: int) -> str:
    if number < 0:
        raise ValueError("ids are positive")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def _mac(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(digest).decode()


def click_token(delivery_id: int, link_id: int) -> str:
    body = f"{_b36(delivery_id)}.{_b36(link_id)}"
    return f"{body}.{_mac(_keys()[0], 'c' + body)}"


def open_token(delivery_id: int) -> str:
    body = _b36(delivery_id)
    return f"{body}.{_mac(_keys()[0], 'o' + body)}"


def click_url(delivery_id: int, link_id: int) -> str:
    return settings.SITE_URL + CLICK_PATH + click_token(delivery_id, link_id)


def open_url(delivery_id: int) -> str:
    return settings.SITE_URL + OPEN_PATH + open_token(delivery_id)


class ClickUrls:
    """Builds a delivery's click URLs with the key and prefix looked up once per campaign."""

    def __init__(self, link_ids: list[int]):
        self.key = _keys()[0]
        # HMAC with the key schedule done once: copy() per URL is cheaper than hmac.new().
        self.base = hmac.new(self.key, digestmod=hashlib.sha256)
        self.prefix = settings.SITE_URL + CLICK_PATH
        self.link_parts = [_b36(link_id) for link_id in link_ids]

    def for_delivery(self, delivery_id: int) -> list[str]:
        d = _b36(delivery_id)
        base, prefix, out = self.base, self.prefix, []
        encode = base64.urlsafe_b64encode
        for link in self.link_parts:
            body = f"{d}.{link}"
            h = base.copy()
            h.update(b"c" + body.encode())
            out.append(f"{prefix}{body}.{encode(h.digest()[:12]).decode()}")
        return out

    def open_url(self, delivery_id: int) -> str:
        body = _b36(delivery_id)
        return f"{settings.SITE_URL}{OPEN_PATH}{body}.{_mac(self.key, 'o' + body)}"


def _verify(kind: str, body: str, mac: str) -> None:
    for key in _keys():
        if hmac.compare_digest(_mac(key, kind + body), mac):
            return
    raise BadTrackingToken("bad signature")


def read_click_token(token: str) -> tuple[int, int]:
    """(delivery_id, link_id); raises BadTrackingToken."""
    try:
        delivery, link, mac = token.split(".")
        _verify("c", f"{delivery}.{link}", mac)
        return int(delivery, 36), int(link, 36)
    except (ValueError, TypeError) as exc:
        raise BadTrackingToken(str(exc)) from exc


def read_open_token(token: str) -> int:
    """The delivery id; raises BadTrackingToken."""
    try:
        delivery, mac = token.split(".")
        _verify("o", delivery, mac)
        return int(delivery, 36)
    except (ValueError, TypeError) as exc:
        raise BadTrackingToken(str(exc)) from exc


# A tracking URL in a message, whatever host it was built with: /t/o/<token> or /t/c/<token>.
_TRACKING_URL_RE = re.compile(
    r"(?:https?:)?(?://[^/\s\"'<>]+)?(?P<path>"
    + re.escape(OPEN_PATH)
    + "|"
    + re.escape(CLICK_PATH)
    + r")(?P<token>[0-9a-z]+(?:\.[0-9a-z]+)?\.[A-Za-z0-9_=-]+)",
    re.IGNORECASE,
)
BLANK_GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def _click_link_id(token: str) -> int | None:
    try:
        return read_click_token(token)[1]
    except BadTrackingToken:
        return None


def untracked_html(html: str) -> str:
    """The message as its recipient would see it, minus its tracking: the open pixel becomes
    a blank inline image and each click URL the link's own destination. For the marketer's
    views of captured messages (the sandbox inbox), where loading the pixel or following a
    link would be recorded as the recipient's open or click (one query for the links)."""
    matches = list(_TRACKING_URL_RE.finditer(html))
    link_ids = {
        link_id
        for m in matches
        if m["path"].lower() == CLICK_PATH and (link_id := _click_link_id(m["token"])) is not None
    }
    urls = dict(Link.objects.filter(pk__in=link_ids).values_list("pk", "url")) if link_ids else {}

    def replace(match: re.Match) -> str:
        if match["path"].lower() == OPEN_PATH:
            return BLANK_GIF
        link_id = _click_link_id(match["token"])
        url = urls.get(link_id) if link_id is not None else None
        return escape(url) if url else "#"

    return _TRACKING_URL_RE.sub(replace, html) if matches else html
