"""The schedule form on the campaign page: only the fields of the chosen kind show (and count),
the time zone is a searchable list that starts at the marketer's zone, and a browser without
JavaScript can still post the whole form."""

from datetime import UTC, datetime

import lxml.html
import pytest
from django.test import Client
from django.urls import reverse

from campaigns.models import Campaign
from tests.support.browser import launch
from tests.support.factories import CampaignFactory, TemplateFactory, make_audience

HTML = (
    '<p>Hello {{ first_name|default:"friend" }}</p>'
    '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
)


@pytest.fixture
def campaign(db):
    topic, _ = make_audience(2)
    return CampaignFactory(topic=topic, template=TemplateFactory(html_body=HTML, subject="News"))


@pytest.fixture
def no_js(editor_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor_user)
    return client


def _page_form(client, campaign, url_name):
    page = client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    action = reverse(url_name, args=[campaign.pk])
    (form,) = [f for f in lxml.html.fromstring(page).forms if f.action == action]
    return form


def _schedule_form(client, campaign):
    return _page_form(client, campaign, "campaigns:schedule")


def _post(client, campaign, **fields):
    form = _schedule_form(client, campaign)
    for name, value in fields.items():
        form.fields[name] = value
    return client.post(form.action, dict(form.form_values()))


def test_a_campaign_never_scheduled_starts_in_the_organisations_time_zone(
    no_js, campaign, settings
):
    settings.TIME_ZONE = "Europe/Paris"
    form = _schedule_form(no_js, campaign)
    assert form.fields["timezone"] == "Europe/Paris"
    # A text box searching a list of every zone, not a 600-line select.
    box = form.inputs["timezone"]
    options = box.getroottree().xpath(f'//datalist[@id="{box.get("list")}"]/option/@value')
    assert "America/New_York" in options and len(options) > 300


def test_the_zone_can_be_typed_in_any_case(no_js, campaign):
    response = _post(
        no_js, campaign, kind="once", send_at_local="2027-06-15T09:30", timezone="europe/paris"
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.schedule_timezone == "Europe/Paris"
    assert campaign.next_run_at == datetime(2027, 6, 15, 7, 30, tzinfo=UTC)
    # Unscheduled, the form shows the chosen zone back, not the default.
    unschedule = _page_form(no_js, campaign, "campaigns:unschedule")
    assert no_js.post(unschedule.action, dict(unschedule.form_values())).status_code == 302
    assert _schedule_form(no_js, campaign).fields["timezone"] == "Europe/Paris"


def test_an_unknown_zone_is_refused_with_a_hint(no_js, campaign):
    response = _post(
        no_js, campaign, kind="once", send_at_local="2027-06-15T09:30", timezone="Paris"
    )
    assert response.status_code == 200
    assert "Choose a time zone from the list, such as Europe/Paris." in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT


def test_without_javascript_fields_of_another_kind_are_ignored(no_js, campaign):
    """Every field shows without the script: a half-typed date left from trying "once" must not
    stop a weekly schedule, nor be saved with it."""
    response = _post(
        no_js,
        campaign,
        kind="recurring",
        weekday="2",
        hour="9",
        timezone="UTC",
        send_at_local="not a date",
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    assert (campaign.recurring_weekday, campaign.recurring_hour) == (2, 9)
    assert campaign.send_date is None


def test_the_fields_of_the_chosen_kind_still_need_their_values(no_js, campaign):
    response = _post(no_js, campaign, kind="recurring", timezone="UTC")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Choose the weekday." in page and "Choose the hour." in page


@pytest.fixture
def paris_page(live_server, editor_user, monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_context(timezone_id="Europe/Paris").new_page()
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", editor_user.username)
        page.fill("input[name=password]", "pw-" + editor_user.username)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(f"{live_server.url}/**")
        try:
            yield page
        finally:
            browser.close()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_in_a_browser_the_form_shows_only_the_chosen_kinds_fields(paris_page, live_server):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(
        topic=topic, template=TemplateFactory(html_body=HTML, subject="News")
    )
    page = paris_page
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    kind = page.locator("select[name=kind]")
    when = page.locator("input[name=send_at_local]")
    weekday = page.locator("select[name=weekday]")
    # The marketer's own zone (the browser's), not the organisation's UTC.
    assert page.locator("input[name=timezone]").input_value() == "Europe/Paris"

    kind.select_option("now")
    assert not when.is_visible() and not weekday.is_visible()
    kind.select_option("once")
    assert when.is_visible() and not weekday.is_visible()
    assert not page.locator("input[name=only_new_since_last]").is_visible()
    kind.select_option("recurring")
    assert weekday.is_visible() and page.locator("input[name=hour]").is_visible()
    assert not when.is_visible()

    kind.select_option("once")
    when.fill("2027-06-15T09:30")
    page.get_by_role("button", name="Schedule", exact=True).click()
    page.get_by_text("Scheduled for 2027-06-15 09:30 CEST").wait_for(timeout=15000)
    campaign.refresh_from_db()
    assert campaign.schedule_timezone == "Europe/Paris"
    assert campaign.next_run_at == datetime(2027, 6, 15, 7, 30, tzinfo=UTC)
