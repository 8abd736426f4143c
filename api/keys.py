"""API keys: creation (the token shown once), authentication, revocation, per-key rate limit."""

import datetime as dt
import hashlib
import ipaddress
import secrets
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from signup.protection import _redis

from .models import ApiKey

TOKEN_PREFIX = "nfm_"  # noqa: S105 - a public prefix, not a secret
# last_used_at is written at most this often per key: a busy key costs no extra UPDATE per call.
LAST_USE_EVERY = 60


class KeyError_(ValueError):
    """A key that cannot be made as asked (the message says why)."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def networks_parse(text: str) -> list[str]:
    """CIDR networks (or single addresses), one per line or comma-separated, normalized."""
    networks = []
    for item in text.replace(",", "\n").split():
        try:
            networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
        except ValueError:
            raise KeyError_(f"{item[:60]!r} is not an IP address or network (CIDR).") from None
    return networks


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    token: str  # shown once, never stored


def api_key_create(
    *,
    name: str,
    scopes: list[str],
    allowed_networks: list[str] | tuple = (),
    rate_per_minute: int = 1200,
    user=None,
) -> NewKey:
    """A new key. 32 random bytes (256 bits) make the token: a plain SHA-256 of it is as good as
    a slow password hash, and keeps authentication one indexed lookup."""
    name = " ".join(name.split())[:100]
    if not name:
        raise KeyError_("Give the key a name (what uses it).")
    unknown = set(scopes) - set(ApiKey.Scope.values)
    if not scopes or unknown:
        raise KeyError_("Choose at least one scope among read, write, send and admin.")
    networks = networks_parse(" ".join(allowed_networks))
    if rate_per_minute < 1:
        raise KeyError_("The rate limit must be at least one request a minute.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        name=name,
        prefix=token[:12],
        key_hash=token_hash(token),
        scopes=sorted(set(scopes)),
        allowed_networks=networks,
        rate_per_minute=rate_per_minute,
        created_by=user,
    )
    return NewKey(key=key, token=token)


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    """Revoked for good (the row stays: the write log keeps naming it)."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def ip_allowed(key: ApiKey, ip: str | None) -> bool:
    if not key.allowed_networks:
        return True
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False) for network in key.allowed_networks
    )


def api_key_for_token(token: str) -> ApiKey | None:
    """The active key this token is, or None (unknown, malformed, or revoked)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    # Every call starts here: a plain cursor and ``from_db`` skip the ORM's SQL compilation and
    # the raw queryset's column mapping; the unique index on key_hash answers it.
    with connection.cursor() as cursor:
        cursor.execute(_KEY_SQL, [token_hash(token)])
        row = cursor.fetchone()
    if row is None:
        return None
    # The fields' own converters, as the ORM applies them (a JSONField's value arrives as text).
    values = [
        field.from_db_value(value, None, connection) if hasattr(field, "from_db_value") else value
        for field, value in zip(ApiKey._meta.concrete_fields, row, strict=True)
    ]
    return ApiKey.from_db(connection.alias, _KEY_FIELDS, values)


_KEY_FIELDS = [field.attname for field in ApiKey._meta.concrete_fields]
_KEY_COLUMNS = ", ".join(str(field.column) for field in ApiKey._meta.concrete_fields)
_KEY_SQL = (
    f"SELECT {_KEY_COLUMNS} FROM api_apikey "  # noqa: S608 - the model's own column names
    "WHERE key_hash = %s AND revoked_at IS NULL"
)


def api_key_touch(*, key: ApiKey, ip: str | None) -> None:
    """Record the use, at most once a LAST_USE_EVERY seconds (a conditional UPDATE, so several
    processes racing write it once)."""
    now = timezone.now()
    if key.last_used_at and (now - key.last_used_at).total_seconds() < LAST_USE_EVERY:
        return
    stale = now - dt.timedelta(seconds=LAST_USE_EVERY)
    ApiKey.objects.filter(pk=key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale)
    ).update(last_used_at=now, last_used_ip=ip)
    key.last_used_at, key.last_used_ip = now, ip


# The count, and the window's expiry set by the request that opens it: one command (a pipeline
# of INCR and EXPIRE took 57-78 us of the request's CPU, this 44-47).
_RATE_SCRIPT = (
    "local n = redis.call('INCR', KEYS[1]) "
    "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end "
    "return n"
)


def rate_take(*, key: ApiKey, now: float | None = None) -> int:
    """Count one request in the key's fixed one-minute window, shared by every process (Redis:
    one command, one round trip). 0 when allowed, else the seconds until the window ends."""
    now = time.time() if now is None else now
    window = int(now // 60)
    name = f"api:rate:{key.pk}:{window}"
    client = _redis()
    if client is not None:
        count = int(client.eval(_RATE_SCRIPT, 1, cache.make_and_validate_key(name), 120))
    else:
        cache.add(name, 0, timeout=120)
        try:
            count = cache.incr(name)
        except ValueError:
            cache.add(name, 1, timeout=120)
            count = 1
    if count <= key.rate_per_minute:
        return 0
    return max(1, int((window + 1) * 60 - now + 0.999))
