"""When a campaign runs: wall-clock times in the sender's chosen time zone, converted to UTC.

A recurring campaign ("every Tuesday 10:00 Europe/Paris") keeps its local hour across DST
changes: the next occurrence is computed on the local calendar, then converted. A local time
that does not exist (the spring-forward gap) moves to the first valid instant after it; one that
exists twice (fall back) takes the first.

A "once" time typed by a marketer is stricter (``resolve_local_time``): a time the clocks skip
is refused with the reason, because no instant is what they asked for; a time that happens
twice takes the first of the two, and says so.
"""

from dataclasses import dataclass
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


class SkippedLocalTime(ValueError):
    """A wall-clock time that never happens: the clocks jump over it (spring forward)."""


@dataclass(frozen=True, slots=True)
class ResolvedTime:
    instant: datetime  # in UTC
    repeated: bool  # the wall-clock time happens twice (fall back): this is the first


def resolve_local_time(naive: datetime, tz_name: str) -> ResolvedTime:
    """The UTC instant of a wall-clock time in ``tz_name``; SkippedLocalTime if there is none."""
    tz = ZoneInfo(tz_name)
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return ResolvedTime(first.astimezone(UTC), repeated=False)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == naive:
        return ResolvedTime(first.astimezone(UTC), repeated=True)
    jump = _transition(second.astimezone(UTC), first.astimezone(UTC), tz)
    before = (jump - timedelta(seconds=1)).astimezone(tz) + timedelta(seconds=1)
    raise SkippedLocalTime(
        f"{naive:%Y-%m-%d %H:%M} does not exist in {tz_name}: that night the clocks go "
        f"forward from {before:%H:%M} to {jump.astimezone(tz):%H:%M}. Choose another time."
    )


def _transition(lo: datetime, hi: datetime, tz: ZoneInfo) -> datetime:
    """The first instant in (lo, hi] with hi's UTC offset (the offset changes once between)."""
    target = hi.astimezone(tz).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return hi.replace(microsecond=0)


def describe_instant(instant: datetime, tz_name: str) -> str:
    """'2027-03-28 03:30 CEST (UTC+02:00)': an instant as read on a clock in ``tz_name``."""
    local = instant.astimezone(ZoneInfo(tz_name))
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} (UTC{offset[:3]}:{offset[3:]})"


_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def schedule_summary(campaign) -> str:
    """When a campaign sends, in the words and the time zone the marketer chose."""
    tz_name = campaign.schedule_timezone
    if campaign.schedule_kind == "once":
        local = campaign.send_at_local
        if local is None:
            return "Once, at a date and time not chosen yet"
        text = f"Once, on {local:%Y-%m-%d} at {local:%H:%M} ({tz_name})"
        if campaign.next_run_at:
            text += f": {campaign.next_run_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        return text
    if campaign.schedule_kind == "recurring":
        if campaign.recurring_weekday is None or campaign.recurring_hour is None:
            return "Every week, on a weekday and hour not chosen yet"
        day = _WEEKDAYS[campaign.recurring_weekday % 7]
        return f"Every {day} at {campaign.recurring_hour:02d}:00 ({tz_name})"
    return "Send now"
