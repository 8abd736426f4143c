"""Pace shared by every worker process: counters in the shared cache (Redis in production),
never in process memory.

- rate per connection: GCRA in Redis (see rate_acquire), one grant per message, fractional
  rates honoured;
- caps per recipient domain per minute: a claimed row over its domain's cap goes back to
  pending until the next minute;
- warm-up: a daily cap per connection that rises day after day (the connection's plan).
"""

import time
from datetime import UTC, date, datetime, timedelta

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.utils import timezone

from .models import SendingConnection


def _id(connection: SendingConnection) -> str:
    # The creation time makes keys unique even where ids are reused (test databases).
    return f"{connection.pk}.{int(connection.created_at.timestamp())}"


def _incr(key: str, amount: int, timeout: int) -> int:
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key, amount)
    except ValueError:  # expired between add and incr
        cache.add(key, 0, timeout=timeout)
        return cache.incr(key, amount)


# GCRA (the generic cell rate algorithm, as in ATM networks and redis-cell): one "theoretical
# arrival time" per connection, in Redis, moved on by 1/rate per message. A message may go
# when that time is not in the future; so, whatever the number of workers, grants are at
# least 1/rate apart and no one-second window holds more than the rate, fractional rates
# (warm-up's 0.2 msg/s) included. Redis's own clock is used, so workers on several machines
# agree without synchronised clocks.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if tat > now then return tat - now end
redis.call('SET', KEYS[1], string.format('%.0f', tat + interval), 'PX',
  math.ceil(interval / 1000) + 1000)
return 0
"""
_gcra_scripts: dict[int, object] = {}


def _gcra():
    """The GCRA script bound to the shared cache's Redis client (None when the cache is not
    Redis: the zero-service `make run`, where windows of one second in the cache do)."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None
    client = backend._cache.get_client(write=True)
    script = _gcra_scripts.get(id(client))
    if script is None:
        script = _gcra_scripts[id(client)] = client.register_script(_GCRA)
    return script


def rate_acquire(connection: SendingConnection) -> float:
    """Block until one more message may go out on this connection (all workers agree).
    Returns the seconds waited."""
    rate = connection.rate_per_second
    if not rate or rate <= 0:
        return 0.0
    script = _gcra()
    if script is None:
        return _rate_acquire_windows(connection, rate)
    interval_us = max(int(1_000_000 / rate), 1)
    key = f"nfm:gcra:{_id(connection)}"
    waited = 0.0
    while True:
        wait_us = int(script(keys=[key], args=[interval_us]))
        if wait_us <= 0:
            return waited
        pause = wait_us / 1_000_000
        time.sleep(pause)
        waited += pause


def _rate_acquire_windows(connection: SendingConnection, rate: float) -> float:
    window = max(1.0, 1.0 / rate)
    per_window = max(1, int(rate * window))
    waited = 0.0
    while True:
        slot = int(time.time() / window)
        key = f"nfm:rate:{_id(connection)}:{slot}"
        if _incr(key, 1, timeout=int(window) + 10) <= per_window:
            return waited
        pause = max((slot + 1) * window - time.time(), 0.001)
        time.sleep(pause)
        waited += pause


def domain_allowance(connection: SendingConnection, counts: dict[str, int]) -> dict[str, int]:
    """For each capped domain in ``counts``, how many of them may go this minute."""
    caps = connection.domain_caps or {}
    allowed: dict[str, int] = {}
    minute = int(time.time() // 60)
    for domain, wanted in counts.items():
        cap = caps.get(domain)
        if cap is None:
            continue
        key = f"nfm:domain:{_id(connection)}:{domain}:{minute}"
        used = _incr(key, wanted, timeout=120)
        over = max(0, min(wanted, used - int(cap)))
        if over:
            _incr(key, -over, timeout=120)
        allowed[domain] = wanted - over
    return allowed


def next_minute() -> datetime:
    now = timezone.now()
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def warmup_cap_for(connection: SendingConnection, day: date) -> int | None:
    plan = connection.warmup_plan or []
    if not plan or connection.warmup_started_on is None:
        return None
    index = (day - connection.warmup_started_on).days
    if index < 0:
        return int(plan[0])
    if index >= len(plan):
        return None  # warmed up
    return int(plan[index])


def warmup_reserve(connection: SendingConnection, wanted: int) -> int:
    """Reserve up to ``wanted`` of today's warm-up allowance; 0 once the day's cap is used."""
    today = datetime.now(UTC).date()
    cap = warmup_cap_for(connection, today)
    if cap is None:
        return wanted
    key = f"nfm:warmup:{_id(connection)}:{today.isoformat()}"
    used = _incr(key, wanted, timeout=2 * 86400)
    over = max(0, min(wanted, used - cap))
    if over:
        _incr(key, -over, timeout=2 * 86400)
    return wanted - over


def warmup_used_today(connection: SendingConnection) -> int:
    today = datetime.now(UTC).date()
    return int(cache.get(f"nfm:warmup:{_id(connection)}:{today.isoformat()}") or 0)


def estimate_finish(*, campaign, remaining: int, rate: float | None) -> datetime | None:
    """When the campaign should be done, given the observed rate, the connection's rate
    limit and the warm-up plan (which can spread a large campaign over several days)."""
    now = timezone.now()
    connection = campaign.connection
    if connection and connection.rate_per_second:
        rate = min(rate or connection.rate_per_second, connection.rate_per_second)
    if not rate:
        return None
    if connection is None or not connection.warmup_plan or not connection.warmup_started_on:
        return now + timedelta(seconds=remaining / rate)
    day = now.astimezone(UTC).date()
    left = remaining
    cap = warmup_cap_for(connection, day)
    available = None if cap is None else max(cap - warmup_used_today(connection), 0)
    moment = now
    for _ in range(3650):
        if available is None or available >= left:
            return moment + timedelta(seconds=left / rate)
        left -= available
        day += timedelta(days=1)
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        cap = warmup_cap_for(connection, day)
        available = cap
    return None


def warmup_days_needed(connection: SendingConnection, audience: int) -> int:
    """How many days the warm-up plan spreads an audience of this size over."""
    day = datetime.now(UTC).date()
    days, left = 0, audience
    while left > 0 and days < 3650:
        cap = warmup_cap_for(connection, day + timedelta(days=days))
        days += 1
        if cap is None:
            return days
        left -= cap
    return max(days, 1) if audience else 0
