"""An open critical reputation alert holds its domain's campaigns until an admin acknowledges
it: resume, Send now, scheduling and the dispatcher are refused; the acknowledgement (who,
when, note) lets them run until the rate worsens past it or a new critical alert opens."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from analytics.ingest import Fact, ingest_facts
from analytics.models import AlertAcknowledgement, ReputationAlert
from campaigns.dispatch import dispatch_due
from campaigns.models import Campaign, Delivery
from subscribers.models import Subscriber
from tests.support.factories import (
    CampaignFactory,
    DeliveryFactory,
    ReputationAlertFactory,
    SendingConnectionFactory,
    SubscriberFactory,
    TemplateFactory,
    make_audience,
)

TUESDAY = 1
# No links: scheduling runs the link check, which must not depend on this machine's network.
NO_LINKS = '<p>Hello {{ first_name|default:"there" }}</p>'


def _critical(domain="sender.example", metric="complaints", rate=0.005, **fields):
    return ReputationAlertFactory(
        scope="domain",
        key=domain,
        metric=metric,
        level="critical",
        rate=rate,
        volume=400,
        message=f"Complaint rate of {domain} is {rate:.2%} over the last 7 days (critical); "
        "its running campaigns were paused.",
        **fields,
    )


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _page(response) -> str:
    return response.content.decode()


def _acknowledge(client, campaign, alerts, note="List cleaned: the complainers were a bad import."):
    return client.post(
        reverse("campaigns:acknowledge", args=[campaign.pk]),
        {"alert": [a.pk for a in alerts], "note": note},
        follow=True,
    )


# --- the campaign page: resume refused, the admin's acknowledgement ------------------------


def test_an_editor_cannot_resume_a_held_campaign_and_is_told_why(editor_client):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="paused")
    alert = _critical()
    response = editor_client.post(reverse("campaigns:resume", args=[campaign.pk]), follow=True)
    page = _page(response)
    assert "Sending from sender.example is held by a critical reputation alert" in page
    assert "An admin must acknowledge the alert" in page
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"
    # The page itself shows the alert and who may lift it, and no acknowledge form.
    assert alert.message in page and "Only an admin can do that" in page
    assert reverse("campaigns:acknowledge", args=[campaign.pk]) not in page
    assert reverse("campaigns:resume", args=[campaign.pk]) not in page


def test_editors_and_viewers_cannot_acknowledge(editor_user, viewer_user):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="paused")
    alert = _critical()
    viewer = _login(viewer_user)
    assert "Only an admin can do that" in _page(
        viewer.get(reverse("campaigns:detail", args=[campaign.pk]))
    )
    for client in (viewer, _login(editor_user)):
        response = client.post(
            reverse("campaigns:acknowledge", args=[campaign.pk]),
            {"alert": [alert.pk], "note": "let me"},
        )
        assert response.status_code == 403
    assert not AlertAcknowledgement.objects.exists()
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"


def test_an_admin_acknowledges_with_a_note_and_the_campaign_resumes(admin_client, admin_user):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="paused")
    alert = _critical()
    detail = _page(admin_client.get(reverse("campaigns:detail", args=[campaign.pk])))
    assert "Acknowledge and resume" in detail
    assert f'name="alert" value="{alert.pk}"' in detail
    before = timezone.now()
    page = _page(_acknowledge(admin_client, campaign, [alert]))
    assert "1 alert acknowledged; resumed." in page
    assert Campaign.objects.get(pk=campaign.pk).status == "running"
    ack = AlertAcknowledgement.objects.get()
    assert ack.alert == alert and ack.acknowledged_by == admin_user
    assert ack.note == "List cleaned: the complainers were a bad import."
    assert ack.rate == 0.005 and ack.acknowledged_at >= before and ack.lapsed_at is None
    alert.refresh_from_db()
    assert alert.resolved_at is None  # acknowledged, not resolved
    assert "Acknowledged by alice-admin" in page and "a bad import" in page


@pytest.mark.parametrize("note", ["", "   "])
def test_acknowledging_needs_a_note(admin_client, note):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="paused")
    alert = _critical()
    page = _page(_acknowledge(admin_client, campaign, [alert], note=note))
    assert "Write a note" in page
    assert not AlertAcknowledgement.objects.exists()
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"


@pytest.mark.parametrize("posted", [["abc"], ["99999"], [], ["1e3"]])
def test_malformed_or_unknown_alert_ids_are_refused_clearly(admin_client, posted):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="paused")
    _critical()
    response = admin_client.post(
        reverse("campaigns:acknowledge", args=[campaign.pk]),
        {"alert": posted, "note": "ok"},
        follow=True,
    )
    assert response.status_code == 200
    page = _page(response)
    assert any(
        m in page for m in ("No alert to acknowledge", "no longer open", "is not an alert")
    ), page
    assert not AlertAcknowledgement.objects.exists()


def test_an_alert_of_another_domain_cannot_be_acknowledged_from_this_page(admin_client):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="paused")
    _critical()
    elsewhere = _critical(domain="other.example")
    page = _page(_acknowledge(admin_client, campaign, [elsewhere]))
    assert "Nothing to acknowledge" in page
    assert not AlertAcknowledgement.objects.exists()


def test_an_alert_opened_since_the_page_was_shown_is_not_acknowledged_unseen(admin_client):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="paused")
    seen = _critical()
    unseen = _critical(metric="hard_bounces", rate=0.06)
    page = _page(_acknowledge(admin_client, campaign, [seen]))
    assert list(AlertAcknowledgement.objects.values_list("alert_id", flat=True)) == [seen.pk]
    assert "is held by a critical reputation alert" in page and unseen.message in page
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"


def test_an_alert_of_the_campaign_itself_holds_it_too(editor_client):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="paused")
    ReputationAlertFactory(
        scope="campaign",
        key=str(campaign.pk),
        metric="hard_bounces",
        level="critical",
        rate=0.07,
        volume=200,
        message="Hard bounce rate of campaign “Launch” is 7.00% (critical); it was paused.",
    )
    page = _page(editor_client.post(reverse("campaigns:resume", args=[campaign.pk]), follow=True))
    assert "is held by a critical reputation alert" in page
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"


def test_a_warning_or_a_resolved_alert_holds_nothing(editor_client):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="paused")
    _critical(resolved_at=timezone.now())
    ReputationAlertFactory(
        scope="domain",
        key="sender.example",
        metric="hard_bounces",
        level="warning",
        rate=0.03,
        volume=400,
        message="Hard bounce rate of sender.example is 3.00% over the last 7 days (warning).",
    )
    editor_client.post(reverse("campaigns:resume", args=[campaign.pk]))
    assert Campaign.objects.get(pk=campaign.pk).status == "running"


def test_the_connections_sending_domain_is_the_one_held(editor_client):

    topic, _ = make_audience(1)
    connection = SendingConnectionFactory(name="esp", sending_domain="Mail.Sender.Example")
    campaign = CampaignFactory(topic=topic, status="paused", connection=connection)
    _critical()  # of the From's domain: not this campaign's sending domain
    editor_client.post(reverse("campaigns:resume", args=[campaign.pk]))
    assert Campaign.objects.get(pk=campaign.pk).status == "running"
    Campaign.objects.filter(pk=campaign.pk).update(status="paused")
    _critical(domain="mail.sender.example")
    editor_client.post(reverse("campaigns:resume", args=[campaign.pk]))
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"


def test_an_editor_cannot_lift_the_hold_by_marking_the_alert_handled(editor_client):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, status="paused")
    alert = _critical()
    home = _page(editor_client.get(reverse("analytics:home")))
    assert reverse("analytics:alert-resolve", args=[alert.pk]) not in home
    page = _page(
        editor_client.post(reverse("analytics:alert-resolve", args=[alert.pk]), follow=True)
    )
    assert "Only an admin can mark a critical alert as handled" in page
    alert.refresh_from_db()
    assert alert.resolved_at is None
    editor_client.post(reverse("campaigns:resume", args=[campaign.pk]))
    assert Campaign.objects.get(pk=campaign.pk).status == "paused"


# --- starting: Send now, scheduling, the dispatcher -----------------------------------------


@pytest.mark.parametrize(
    "form",
    [
        {"kind": "now", "timezone": "UTC"},
        {"kind": "recurring", "timezone": "UTC", "weekday": "1", "hour": "9"},
    ],
)
def test_send_now_and_scheduling_are_refused_while_held(editor_client, form):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, template=TemplateFactory(html_body=NO_LINKS))
    _critical()
    page = _page(
        editor_client.post(reverse("campaigns:schedule", args=[campaign.pk]), form, follow=True)
    )
    assert "is held by a critical reputation alert" in page
    campaign.refresh_from_db()
    assert campaign.status == "draft" and campaign.next_run_at is None


def test_after_the_acknowledgement_a_draft_can_be_sent_now(admin_client, editor_user):
    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic, template=TemplateFactory(html_body=NO_LINKS))
    alert = _critical()
    detail = _page(admin_client.get(reverse("campaigns:detail", args=[campaign.pk])))
    assert ">Acknowledge</button>" in detail
    assert "1 alert acknowledged." in _page(_acknowledge(admin_client, campaign, [alert]))
    _login(editor_user).post(
        reverse("campaigns:schedule", args=[campaign.pk]), {"kind": "now", "timezone": "UTC"}
    )
    assert Campaign.objects.get(pk=campaign.pk).status == "scheduled"


def test_the_dispatcher_leaves_a_due_campaign_scheduled_and_held_with_its_reason(
    admin_client, viewer_user
):
    topic, _ = make_audience(3)
    held = CampaignFactory(topic=topic, name="held")
    other = CampaignFactory(topic=topic, name="other")
    Campaign.objects.filter(pk=other.pk).update(from_email="news@other.example")
    now = timezone.now()
    Campaign.objects.filter(pk__in=[held.pk, other.pk]).update(
        status="scheduled", next_run_at=now - timedelta(minutes=1)
    )
    alert = _critical()
    first = dispatch_due(now=now)
    second = dispatch_due(now=now)  # the next tick: still held, still no error
    assert first["held"] == [held.pk] and second["held"] == [held.pk]
    assert first["started"] == [other.pk] and not first["errors"] and not second["errors"]
    held.refresh_from_db()
    assert held.status == "scheduled" and held.next_run_at is not None
    assert "is held by a critical reputation alert" in held.status_reason
    assert not Delivery.objects.filter(campaign=held).exists()  # no snapshot while held
    page = _page(_login(viewer_user).get(reverse("campaigns:detail", args=[held.pk])))
    assert held.status_reason in page and "Only an admin can do that" in page

    assert "it starts when due" in _page(_acknowledge(admin_client, held, [alert]))
    third = dispatch_due(now=now)
    assert third["started"] == [held.pk] and third["held"] == []
    held.refresh_from_db()
    assert held.status == "running" and held.status_reason == ""
    assert Delivery.objects.filter(campaign=held).count() == 3


def test_a_held_recurring_campaign_creates_no_occurrence_until_acknowledged(admin_user):
    topic, _ = make_audience(2)
    parent = CampaignFactory(
        topic=topic,
        name="Weekly",
        schedule_kind="recurring",
        recurring_weekday=TUESDAY,
        recurring_hour=10,
    )
    due = timezone.now() - timedelta(minutes=1)
    Campaign.objects.filter(pk=parent.pk).update(status="scheduled", next_run_at=due)
    alert = _critical()
    report = dispatch_due()
    assert report["held"] == [parent.pk] and report["occurrences"] == []
    assert not Campaign.objects.filter(parent=parent).exists()
    parent.refresh_from_db()
    assert parent.status == "scheduled" and parent.next_run_at == due

    _acknowledge(_login(admin_user), parent, [alert])
    report = dispatch_due()
    (child,) = Campaign.objects.filter(parent=parent)
    assert report["occurrences"] == [child.pk] and child.status == "running"


def test_the_send_campaign_command_is_refused_too(db):
    from django.core.management import CommandError, call_command

    topic, _ = make_audience(1)
    campaign = CampaignFactory(topic=topic)
    _critical()
    with pytest.raises(CommandError, match="held by a critical reputation alert"):
        call_command("send_campaign", str(campaign.pk))
    assert not Delivery.objects.filter(campaign=campaign).exists()


# --- evaluations after the hold: re-pause, acknowledgement, lapse ----------------------------


def _feed(deliveries, kind, n, *, start=0, **fields):
    ingest_facts(
        [
            Fact(
                uid=f"{kind}-{d.pk}",
                kind=kind,
                occurred_at=timezone.now(),
                delivery_id=d.pk,
                esp="postmark",
                **fields,
            )
            for d in deliveries[start : start + n]
        ]
    )


def _sent_campaign(*, name, n, status="finished", domain="news.example.com"):
    """A campaign of the domain whose n messages went out two hours ago (bulk-created)."""
    connection = SendingConnectionFactory(name=f"esp-{domain}", sending_domain=domain)
    campaign = CampaignFactory(
        sent=True,
        name=name,
        status=status,
        domain=domain,
        connection=connection,
        links=[],
        recipients=0,
    )
    subscribers = Subscriber.objects.bulk_create(
        [SubscriberFactory.build(email=f"r{campaign.pk}-{i}@example.net") for i in range(n)]
    )
    sent_at = timezone.now() - timedelta(hours=2)
    deliveries = Delivery.objects.bulk_create(
        [
            DeliveryFactory.build(
                campaign=campaign,
                subscriber=s,
                status=Delivery.Status.SENT,
                sent_at=sent_at,
                message_id=f"<m-{campaign.pk}-{i}@{domain}>",
            )
            for i, s in enumerate(subscribers)
        ]
    )
    return campaign, deliveries


def _status(campaign) -> str:
    return Campaign.objects.get(pk=campaign.pk).status


@pytest.fixture
def complaining_domain(db, settings):
    """news.example.com at 2 complaints in 400 (0.50 %, critical): its running campaign paused."""
    settings.REPUTATION_MIN_VOLUME = 100
    _, deliveries = _sent_campaign(name="Finished", n=800)
    running, _ = _sent_campaign(name="Running", status="running", n=1)
    _feed(deliveries, "delivered", 400)
    _feed(deliveries, "complained", 2)
    alert = ReputationAlert.objects.get(scope="domain", level="critical")
    assert _status(running) == "paused" and alert.paused_campaigns == [running.pk]
    return deliveries, running, alert


def test_a_campaign_running_under_an_unacknowledged_critical_alert_is_paused_again(
    complaining_domain,
):
    deliveries, running, _ = complaining_domain
    # As before this guard: resumed behind the alert's back, at a rate still critical.
    Campaign.objects.filter(pk=running.pk).update(status="running")
    _feed(deliveries, "delivered", 200, start=400)  # 2 in 600: 0.33 %, still critical
    assert _status(running) == "paused"
    assert "Not acknowledged: paused again." in Campaign.objects.get(pk=running.pk).status_reason


def test_an_acknowledged_alert_lets_the_domain_run_through_still_critical_evaluations(
    complaining_domain, admin_user
):
    deliveries, running, alert = complaining_domain
    _acknowledge(_login(admin_user), running, [alert])
    assert _status(running) == "running"
    _feed(deliveries, "delivered", 180, start=400)  # 2 in 580: 0.34 %
    _feed(deliveries, "complained", 1, start=2)  # 3 in 580: 0.52 %, within 10 % of 0.50 %
    _feed(deliveries, "delivered", 120, start=580)  # 3 in 700: 0.43 %
    assert _status(running) == "running"
    alert.refresh_from_db()
    assert alert.rate == pytest.approx(3 / 700) and alert.resolved_at is None
    assert AlertAcknowledgement.objects.get().lapsed_at is None


def test_a_rate_worse_than_acknowledged_pauses_again_and_needs_a_new_acknowledgement(
    complaining_domain, admin_user, editor_client
):
    deliveries, running, alert = complaining_domain
    admin = _login(admin_user)
    _acknowledge(admin, running, [alert])
    _feed(deliveries, "delivered", 200, start=400)
    _feed(deliveries, "complained", 4, start=2)  # 6 in 600: 1.00 %, double the 0.50 %
    assert _status(running) == "paused"
    ack = AlertAcknowledgement.objects.get()
    assert ack.lapsed_at is not None and "rose to 1.00%, past the 0.50%" in ack.lapsed_reason
    assert "paused again" in Campaign.objects.get(pk=running.pk).status_reason
    page = _page(editor_client.post(reverse("campaigns:resume", args=[running.pk]), follow=True))
    assert "is held by a critical reputation alert" in page
    assert _status(running) == "paused"
    _acknowledge(admin, running, [alert], note="Second look: still the bad import.")
    assert _status(running) == "running"
    assert AlertAcknowledgement.objects.filter(lapsed_at__isnull=True).get().rate == 0.01


def test_an_acknowledgement_lapses_a_window_after_it_was_given_if_still_critical(
    complaining_domain, admin_user, settings
):
    deliveries, running, alert = complaining_domain
    _acknowledge(_login(admin_user), running, [alert])
    AlertAcknowledgement.objects.update(
        acknowledged_at=timezone.now() - timedelta(days=settings.REPUTATION_WINDOW_DAYS)
    )
    _feed(deliveries, "delivered", 100, start=400)  # 2 in 500: 0.40 %, still critical
    assert _status(running) == "paused"
    assert "still critical" in AlertAcknowledgement.objects.get().lapsed_reason


def test_a_new_critical_alert_holds_again_despite_the_earlier_acknowledgement(
    complaining_domain, admin_user, editor_client
):
    deliveries, running, alert = complaining_domain
    _acknowledge(_login(admin_user), running, [alert])
    _feed(deliveries, "bounced", 30, start=400, bounce_type="hard")  # 30 in 430: 7 %
    assert _status(running) == "paused"
    bounces = ReputationAlert.objects.get(metric="hard_bounces", scope="domain")
    assert bounces.level == "critical"
    page = _page(editor_client.post(reverse("campaigns:resume", args=[running.pk]), follow=True))
    assert bounces.message in page and _status(running) == "paused"
