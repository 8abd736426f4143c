"""When a campaign runs: wall-clock times in the sender's chosen time zone, converted to UTC.

A recurring campaign ("every Tuesday 10:00 Europe/Paris") keeps its local hour across DST
changes: the next occurrence is computed on the local calendar, then converted. A local time
that does not exist (the spring-forward gap) moves to the first valid instant after it; one that
exists twice (fall back) takes the first.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


def local_to_utc(naive: datetime, tz_name: str) -> datetime:
    tz = ZoneInfo(tz_name)
    aware = naive.replace(tzinfo=tz, fold=0)
    # A time in the spring-forward gap does not round-trip: move it past the gap.
    roundtrip = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if roundtrip != naive:
        aware = (naive + timedelta(hours=1)).replace(tzinfo=tz, fold=0)
    return aware.astimezone(UTC)


def next_weekly_occurrence(*, weekday: int, hour: int, tz_name: str, after: datetime) -> datetime:
    """The first instant strictly after ``after`` that is ``weekday`` at ``hour``:00 local time."""
    tz = ZoneInfo(tz_name)
    local_after = after.astimezone(tz)
    day = local_after.date()
    for offset in range(0, 15):
        candidate_day = day + timedelta(days=offset)
        if candidate_day.weekday() != weekday:
            continue
        candidate = local_to_utc(
            datetime(candidate_day.year, candidate_day.month, candidate_day.day, hour), tz_name
        )
        if candidate > after:
            return candidate
    raise AssertionError("a weekday occurs every 7 days")  # pragma: no cover
