"""Abuse protection for the public form endpoints.

Cross-origin posts cannot carry our CSRF cookie (third-party cookies are blocked), so a form
carries a signed, timestamped token instead: it proves the visitor loaded the form from us, when
(the minimum fill time), and is the proof-of-work challenge. Rate limits count in the shared cache
(Redis in production), never in process memory: every web process sees the same counters.
"""

import hashlib
import secrets
import time
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from email_validator import EmailNotValidError, validate_email

from core.addresses import address_or_none
from core.tokens import BadToken, make_token, read_token
from subscribers.emails import EmailError, email_normalize

FORM_TOKEN = "signup.form"  # noqa: S105 - signing salts, not secrets
STEP_TOKEN = "signup.step"  # noqa: S105
HONEYPOT_FIELD = "website"  # a name bots like to fill


class Refused(Exception):
    """A submission refused before validation; ``code`` names the message shown."""

    def __init__(self, code: str, status: int = 400):
        super().__init__(code)
        self.code = code
        self.status = status


# --- Form token ------------------------------------------------------------------------------


def form_token_make(form_id: int) -> str:
    return make_token(FORM_TOKEN, {"f": form_id, "t": int(time.time()), "n": secrets.token_hex(6)})


def form_token_check(token: str, *, form_id: int, min_fill_seconds: int) -> dict:
    """The token's payload, or Refused: forged, for another form, expired, or filled too fast."""
    try:
        payload = read_token(FORM_TOKEN, token or "", max_age=settings.SIGNUP_TOKEN_MAX_AGE)
    except BadToken:
        raise Refused("expired", 403) from None
    if not isinstance(payload, dict) or payload.get("f") != form_id:
        raise Refused("expired", 403)
    if time.time() - payload.get("t", 0) < min_fill_seconds:
        raise Refused("too_fast", 400)
    return payload


def step_token_make(*, signup_id: int, form_id: int) -> str:
    return make_token(STEP_TOKEN, {"s": signup_id, "f": form_id})


def step_token_read(token: str, *, form_id: int) -> int:
    """The signup id a later step adds to (0 for a honeypot's fake signup)."""
    try:
        payload = read_token(STEP_TOKEN, token or "", max_age=settings.SIGNUP_TOKEN_MAX_AGE)
    except BadToken:
        raise Refused("expired", 403) from None
    if not isinstance(payload, dict) or payload.get("f") != form_id:
        raise Refused("expired", 403)
    return int(payload.get("s") or 0)


# --- Proof of work ---------------------------------------------------------------------------


def pow_valid(token: str, nonce: str, bits: int) -> bool:
    """sha256(token ":" nonce) starts with ``bits`` zero bits (static/signup/embed.js solves it)."""
    if not nonce or len(nonce) > 32:
        return False
    digest = hashlib.sha256(f"{token}:{nonce}".encode()).digest()
    value = int.from_bytes(digest, "big")
    return value >> (256 - bits) == 0


def pow_spend(token: str) -> bool:
    """One solved challenge, one signup: False if this token's work was already used."""
    key = "signup:pow:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return cache.add(key, 1, timeout=settings.SIGNUP_TOKEN_MAX_AGE)


# --- Rate limits -----------------------------------------------------------------------------


_redis_clients: dict[int, object] = {}


def _redis():
    """The cache's own Redis client (same server, pool and key prefix), or None when the cache
    is not Redis (development). Built once per process: Django builds one per cache call."""
    backend = getattr(cache, "_cache", None)
    if backend is None or not hasattr(backend, "get_client"):
        return None
    client = _redis_clients.get(id(backend))
    if client is None:
        client = _redis_clients[id(backend)] = backend.get_client(write=True)
    return client


def rate_hit(key: str, *, limit: int, window: int) -> bool:
    """Count one hit in a fixed window shared by every process; False once over the limit.

    On Redis this is one round trip (SET NX EX + INCR in a pipeline): it runs on every
    submission. Other cache backends (development) go through the cache API.
    """
    client = _redis()
    if client is not None:
        cache_key = cache.make_and_validate_key(f"signup:rate:{key}")
        pipe = client.pipeline(transaction=False)
        pipe.set(cache_key, 0, ex=window, nx=True)
        pipe.incr(cache_key)
        count = pipe.execute()[1]
    else:
        cache.add(f"signup:rate:{key}", 0, timeout=window)
        try:
            count = cache.incr(f"signup:rate:{key}")
        except ValueError:  # expired between add and incr: start a new window
            cache.add(f"signup:rate:{key}", 1, timeout=window)
            count = 1
    return count <= limit


def address_key(email: str) -> str:
    return hashlib.sha256(email.lower().encode()).hexdigest()[:32]


def confirmation_window_claim(email: str) -> bool:
    """True for the first confirmation email to this address in the window (atomic SET NX)."""
    key = f"signup:confirm-mail:{address_key(email)}"
    window = settings.SIGNUP_CONFIRMATION_WINDOW
    client = _redis()
    if client is not None:
        return bool(client.set(cache.make_and_validate_key(key), 1, ex=window, nx=True))
    return cache.add(key, 1, timeout=window)


def client_ip(request) -> str | None:
    """The client's address (None when it is not one), as forms, the API's keys and logs
    store it."""
    if settings.SIGNUP_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        # The rightmost address was added by our own proxy: the others are the client's claims.
        if forwarded:
            return address_or_none(forwarded.split(",")[-1])
    return address_or_none(request.META.get("REMOTE_ADDR"))


# --- Addresses -------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def disposable_domains() -> frozenset[str]:
    paths = [Path(__file__).parent / "data" / "disposable_domains.txt"]
    if settings.SIGNUP_DISPOSABLE_DOMAINS_FILE:
        paths.append(Path(settings.SIGNUP_DISPOSABLE_DOMAINS_FILE))
    domains = set()
    for path in paths:
        for line in path.read_text().splitlines():
            line = line.strip().lower()
            if line and not line.startswith("#"):
                domains.add(line)
    return frozenset(domains)


def email_check(raw: str, *, reject_disposable: bool, check_dns: bool) -> tuple[str, str]:
    """(normalized address, "") or ("", message code): syntax by email-validator, then the
    optional disposable list and DNS (MX/A) lookup."""
    try:
        email = email_normalize(raw)
    except EmailError:
        return "", "invalid_email"
    domain = email.rsplit("@", 1)[1]
    if reject_disposable:
        parts = domain.split(".")
        candidates = {".".join(parts[i:]) for i in range(len(parts) - 1)}
        if candidates & disposable_domains():
            return "", "disposable"
    if check_dns:
        try:
            validate_email(email, check_deliverability=True)
        except EmailNotValidError:
            return "", "invalid_email"
    return email, ""
