"""Pace shared by every worker process: counters in the shared cache (Redis in production),
never in process memory.

- rate per connection: fixed windows of 100 ms (1 s below 10 msg/s); a sender takes tokens in
  small chunks and sleeps to the next window when the current one is full;
- caps per recipient domain per minute: a claimed row over its domain's cap goes back to
  pending until the next minute;
- warm-up: a daily cap per connection that rises day after day (the connection's plan).
"""

import time
from datetime import UTC, date, datetime, timedelta

from django.core.cache import cache
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


def rate_acquire(connection: SendingConnection, tokens: int) -> None:
    """Block until ``tokens`` messages may go out on this connection (all workers agree)."""
    rate = connection.rate_per_second
    if not rate:
        return
    window = 0.1 if rate >= 10 else 1.0
    per_window = max(1, int(rate * window))
    while tokens > 0:
        take = min(tokens, per_window)
        now = time.time()
        slot = int(now / window)
        used = _incr(f"nfm:rate:{_id(connection)}:{slot}", take, timeout=10)
        if used <= per_window:
            tokens -= take
            continue
        # The window is full: give back what did not fit and wait for the next one.
        _incr(f"nfm:rate:{_id(connection)}:{slot}", -take, timeout=10)
        time.sleep(max((slot + 1) * window - time.time(), 0.001))


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
