"""Scheduling from the campaign page, as a browser does it: the schedule form read off the page,
filled in, and posted back with its CSRF token; the time is a datetime-local value read on a
clock in the zone the marketer picks."""

from datetime import UTC, datetime

import lxml.html
import pytest
from django.test import Client
from django.urls import reverse

from campaigns.models import Campaign
from tests.support.factories import CampaignFactory, TemplateFactory, make_audience

# Django warns (RuntimeWarning) when a naive datetime reaches a DateTimeField: that warning
# was the sign of the wall-clock time stored as an instant, and must not come back.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

# No links: the pre-flight's link check would try the network.
HTML = (
    '<p>Hello {{ first_name|default:"friend" }}</p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)


@pytest.fixture
def browser(editor_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor_user)
    return client


@pytest.fixture
def campaign(db):
    topic, _ = make_audience(2)
    return CampaignFactory(topic=topic, template=TemplateFactory(html_body=HTML, subject="News"))


def _page(client, campaign):
    response = client.get(reverse("campaigns:detail", args=[campaign.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _form(page: str, action: str):
    (form,) = [f for f in lxml.html.fromstring(page).forms if f.action == action]
    return form


def _schedule_form(page: str, campaign):
    return _form(page, reverse("campaigns:schedule", args=[campaign.pk]))


def _submit(client, campaign, *, raw=None, **fields):
    """Fill the page's schedule form like a person would, post what the browser would send."""
    form = _schedule_form(_page(client, campaign), campaign)
    for name, value in fields.items():
        form.fields[name] = value
    data = dict(form.form_values())
    data.update(raw or {})  # values no browser widget would produce
    return client.post(form.action, data)


def _shown_value(page: str, campaign, name: str) -> str:
    return _schedule_form(page, campaign).fields[name]


@pytest.mark.parametrize(
    ("zone", "typed", "utc", "shown"),
    [
        ("Europe/Paris", "2027-06-15T09:30", datetime(2027, 6, 15, 7, 30), "CEST"),
        ("Europe/Paris", "2027-01-15T09:30", datetime(2027, 1, 15, 8, 30), "CET"),
        ("America/New_York", "2027-06-15T09:30", datetime(2027, 6, 15, 13, 30), "EDT"),
        ("America/New_York", "2027-12-15T09:30", datetime(2027, 12, 15, 14, 30), "EST"),
        ("Asia/Kolkata", "2027-06-15T09:30", datetime(2027, 6, 15, 4, 0), "IST"),
        ("Pacific/Auckland", "2027-06-15T09:30", datetime(2027, 6, 14, 21, 30), "NZST"),
        ("Pacific/Auckland", "2027-12-15T09:30", datetime(2027, 12, 14, 20, 30), "NZDT"),
        # Either side of the night Paris springs forward (2027-03-28, 02:00 -> 03:00).
        ("Europe/Paris", "2027-03-28T01:30", datetime(2027, 3, 28, 0, 30), "CET"),
        ("Europe/Paris", "2027-03-28T03:30", datetime(2027, 3, 28, 1, 30), "CEST"),
    ],
)
def test_once_at_a_local_time_runs_at_that_instant_and_the_page_shows_it_back(
    browser, campaign, zone, typed, utc, shown
):
    response = _submit(browser, campaign, kind="once", send_at_local=typed, timezone=zone)
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    assert campaign.next_run_at == utc.replace(tzinfo=UTC)
    assert campaign.schedule_timezone == zone

    page = _page(browser, campaign)
    day, time = typed.split("T")
    assert f"Once, on {day} at {time} ({zone}): {utc:%Y-%m-%d %H:%M} UTC" in page
    assert f"Next run: {day} {time} {shown} ({zone})" in page
    assert f"Scheduled for {day} {time} {shown}" in page
    # Unscheduled again, the form offers the same wall-clock time in the same zone.
    unschedule = _form(page, reverse("campaigns:unschedule", args=[campaign.pk]))
    assert browser.post(unschedule.action, dict(unschedule.form_values())).status_code == 302
    page = _page(browser, campaign)
    assert _shown_value(page, campaign, "send_at_local") == typed
    assert _shown_value(page, campaign, "timezone") == zone


@pytest.mark.parametrize(
    ("zone", "typed", "jump"),
    [
        ("Europe/Paris", "2027-03-28T02:30", "from 02:00 to 03:00"),
        ("America/New_York", "2027-03-14T02:15", "from 02:00 to 03:00"),
        ("Pacific/Auckland", "2027-09-26T02:00", "from 02:00 to 03:00"),
    ],
)
def test_a_time_the_clocks_skip_is_refused_clearly_and_what_was_typed_stays(
    browser, campaign, zone, typed, jump
):
    response = _submit(browser, campaign, kind="once", send_at_local=typed, timezone=zone)
    assert response.status_code == 200
    page = response.content.decode()
    day, time = typed.split("T")
    assert f"{day} {time} does not exist in {zone}: that night the clocks go forward {jump}" in (
        page
    )
    assert _shown_value(page, campaign, "send_at_local") == typed
    assert _shown_value(page, campaign, "timezone") == zone
    assert _shown_value(page, campaign, "kind") == "once"
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT and campaign.next_run_at is None
    assert campaign.send_at_local is None


@pytest.mark.parametrize(
    ("zone", "typed", "utc", "shown"),
    [
        # Fall back: these times happen twice; the first (summer time) is the one used.
        ("America/New_York", "2027-11-07T01:30", datetime(2027, 11, 7, 5, 30), "EDT"),
        ("Europe/Paris", "2027-10-31T02:30", datetime(2027, 10, 31, 0, 30), "CEST"),
        ("Pacific/Auckland", "2027-04-04T02:30", datetime(2027, 4, 3, 13, 30), "NZDT"),
    ],
)
def test_a_time_that_happens_twice_takes_the_first_and_says_so(
    browser, campaign, zone, typed, utc, shown
):
    response = _submit(browser, campaign, kind="once", send_at_local=typed, timezone=zone)
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.next_run_at == utc.replace(tzinfo=UTC)
    page = _page(browser, campaign)
    time = typed.split("T")[1]
    assert f"the first of the two {time}s that night" in page
    assert f"{typed.replace('T', ' ')} {shown}" in page


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"send_at_local": ""}, "Choose the date and time."),
        ({"send_at_local": "2027-02-30T10:00"}, "Enter a valid date/time."),
        ({"send_at_local": "next tuesday"}, "Enter a valid date/time."),
        ({"send_at_local": "0001-01-01T00:00"}, "Choose a date between 2000 and 9998."),
        ({"send_at_local": "9999-12-31T23:59"}, "Choose a date between 2000 and 9998."),
        (
            {"send_at_local": "2027-06-15T09:30", "timezone": "Mars/Olympus"},
            "Choose a time zone from the list",
        ),
        ({"kind": "sometimes"}, "Select a valid choice"),
    ],
)
def test_malformed_schedules_get_an_error_never_a_500(browser, campaign, raw, error):
    response = _submit(
        browser, campaign, kind="once", timezone="Europe/Paris", raw={"send_at_local": "", **raw}
    )
    assert response.status_code == 200
    assert error in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT and campaign.next_run_at is None


def test_an_offset_typed_by_hand_is_read_as_that_instant_in_the_chosen_zone(browser, campaign):
    response = _submit(
        browser,
        campaign,
        kind="once",
        timezone="Asia/Kolkata",
        raw={"send_at_local": "2027-06-15T09:30+02:00"},
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.next_run_at == datetime(2027, 6, 15, 7, 30, tzinfo=UTC)
    assert campaign.send_at_local == datetime(2027, 6, 15, 13, 0)  # 07:30 UTC in Kolkata


def test_every_week_on_a_weekday_and_hour_still_schedules_from_the_page(browser, campaign):
    from zoneinfo import ZoneInfo

    response = _submit(
        browser, campaign, kind="recurring", weekday="1", hour="10", timezone="Europe/Paris"
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    local = campaign.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.weekday(), local.hour, local.minute) == (1, 10, 0)
    assert "Every Tuesday at 10:00 (Europe/Paris)" in _page(browser, campaign)


def test_an_admin_override_from_the_preflight_page_keeps_the_chosen_time(admin_user):
    topic, _ = make_audience(1)
    blocked = CampaignFactory(
        topic=topic,
        template=TemplateFactory(html_body="<p>Hi {{ nickname }}</p>", subject="News"),
        schedule_kind="once",
        schedule_timezone="Asia/Kolkata",
        send_at_local=datetime(2027, 6, 15, 9, 30),
    )
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    page = client.get(reverse("campaigns:preflight", args=[blocked.pk])).content.decode()
    form = _schedule_form(page, blocked)
    assert form.fields["send_at_local"] == "2027-06-15T09:30"
    form.fields["override"] = True
    assert client.post(form.action, dict(form.form_values())).status_code == 302
    blocked.refresh_from_db()
    assert blocked.status == Campaign.Status.SCHEDULED
    assert blocked.next_run_at == datetime(2027, 6, 15, 4, 0, tzinfo=UTC)
