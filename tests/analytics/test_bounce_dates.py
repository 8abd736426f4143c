"""When a bounce or complaint happened: read from the report's Date header."""

from datetime import UTC, datetime
from email import message_from_string

from analytics.bounce_mail import _date


def test_a_date_in_no_known_zone_is_read_as_utc():
    # RFC 5322's "-0000": the time is UTC, the sender's zone unknown (a naive datetime).
    message = message_from_string("Date: Wed, 02 Dec 2026 10:00:00 -0000\n\nbody\n")
    assert _date(message) == (datetime(2026, 12, 2, 10, 0, tzinfo=UTC), True)


def test_a_date_with_its_zone_keeps_it():
    message = message_from_string("Date: Wed, 02 Dec 2026 11:00:00 +0100\n\nbody\n")
    assert _date(message) == (datetime(2026, 12, 2, 10, 0, tzinfo=UTC), True)
