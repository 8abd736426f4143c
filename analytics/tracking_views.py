"""The public tracking endpoints: the open pixel and the click redirect.

Both answer without touching the database on the way (hits go to the Redis buffer); the click
redirect reads its Link row once per process and keeps it, since a Link never changes. A bad
token still gets the pixel, or a plain page for a click: never a redirect to anywhere the
token did not come from.

A recorded hit's response is streamed: its body waits for Redis's acknowledgement of the hit,
so the round trip overlaps with Django's response middleware instead of idling the process,
and still no byte (not even the status line) leaves before the hit is safe in Redis.
"""

import base64
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_safe

from . import buffer
from .models import CampaignTracking, Link
from .tracking import BadTrackingToken, read_click_token, read_open_token

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_CACHE = "no-store, no-cache, must-revalidate, max-age=0, private"
REDIRECT_SCHEMES = {"http", "https"}
LINK_TTL = 300  # seconds a process trusts its copy of a campaign's tracking mode and UTM
_links: dict[int, tuple[float, str | None, str]] = {}


def _client_ip(request) -> str | None:
    if settings.TRACKING_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR")


def _is_prefetch(request) -> bool:
    meta = request.META
    hints = (
        meta.get("HTTP_PURPOSE", ""),
        meta.get("HTTP_SEC_PURPOSE", ""),
        meta.get("HTTP_X_PURPOSE", ""),
        meta.get("HTTP_X_MOZ", ""),
    )
    return any("prefetch" in h.lower() or "preview" in h.lower() for h in hints)


def _hit(request, kind: str, delivery_id: int, link_id: int | None = None) -> Callable[[], None]:
    hit = {
        "k": kind,
        "d": delivery_id,
        "ip": _client_ip(request),
        "ua": request.META.get("HTTP_USER_AGENT", "")[:500],
        "m": request.method,
        "t": time.time(),
    }
    if link_id is not None:
        hit["l"] = link_id
    if _is_prefetch(request):
        hit["p"] = 1
    return buffer.send(hit)


def _after(confirm: Callable[[], None], body: bytes) -> Iterator[bytes]:
    confirm()
    yield body


def _recorded(confirm: Callable[[], None], body: bytes, **kwargs) -> StreamingHttpResponse:
    """A response whose first byte waits for the hit's acknowledgement (see the docstring)."""
    response = StreamingHttpResponse(_after(confirm, body), **kwargs)
    # Known length: gunicorn sends it as is rather than chunked.
    response["Content-Length"] = str(len(body))
    return response


def with_utm(url: str, utm: dict[str, str]) -> str:
    """The URL with the campaign's UTM parameters added (the link's own ones win)."""
    utm = {k: v for k, v in utm.items() if v}
    if not utm:
        return url
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {k for k, _ in query}
    query += [(k, v) for k, v in utm.items() if k not in present]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _link(link_id: int) -> tuple[str | None, str]:
    """(destination with UTM, tracking mode), or (None, "") for an unknown link or one that
    is not http(s)."""
    cached = _links.get(link_id)
    now = time.monotonic()
    if cached and cached[0] > now:
        return cached[1], cached[2]

    link = Link.objects.filter(pk=link_id).values("url", "campaign_id").first()
    if link is None or urlsplit(link["url"]).scheme.lower() not in REDIRECT_SCHEMES:
        return None, ""
    tracking = CampaignTracking.objects.filter(campaign_id=link["campaign_id"]).first()
    mode = tracking.mode if tracking else CampaignTracking.Mode.INDIVIDUAL
    url = link["url"]
    if tracking:
        url = with_utm(
            url,
            {
                "utm_source": tracking.utm_source,
                "utm_medium": tracking.utm_medium,
                "utm_campaign": tracking.utm_campaign,
            },
        )
    if len(_links) > 50_000:
        _links.clear()
    _links[link_id] = (now + LINK_TTL, url, mode)
    return url, mode


def _pixel(response: HttpResponseBase | None = None) -> HttpResponseBase:
    if response is None:
        response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = NO_CACHE
    response["Pragma"] = "no-cache"
    response["Expires"] = "0"
    return response


@require_safe
def open_pixel(request, token: str):
    try:
        delivery_id = read_open_token(token)
    except BadTrackingToken:
        return _pixel()
    confirm = _hit(request, "o", delivery_id)
    return _pixel(_recorded(confirm, PIXEL, content_type="image/gif"))


BAD_LINK = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Link not recognised</title><meta name="robots" content="noindex"></head>
<body style="font-family:sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem">
<h1>This link is not valid</h1><p>The link you followed is incomplete or has been altered,
so we cannot tell where it should go. Please use the link in the original email.</p>
</body></html>"""


def _bad_link() -> HttpResponse:
    response = HttpResponse(BAD_LINK, status=404)
    response["Cache-Control"] = NO_CACHE
    return response


@require_safe
def click_redirect(request, token: str):
    try:
        delivery_id, link_id = read_click_token(token)
    except BadTrackingToken:
        return _bad_link()
    try:
        url, mode = _link(link_id)
    except Exception:  # the redirect always answers, even with the database down
        url, mode = None, ""
    if url is None:
        return _bad_link()
    response: HttpResponseBase
    if mode == "off":
        response = HttpResponseRedirect(url)
        response["Cache-Control"] = NO_CACHE
        return response
    confirm = _hit(request, "c", delivery_id, link_id)
    response = _recorded(confirm, b"", status=302)
    response["Location"] = url
    response["Cache-Control"] = NO_CACHE
    return response


def trivial_gif(request):
    """A constant pixel, no token, no buffer: the baseline of bench/tracking.py."""
    return _pixel()
