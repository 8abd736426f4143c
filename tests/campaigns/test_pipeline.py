import pytest
from django.core import mail

from analytics.models import Event
from campaigns.models import Campaign, Delivery, SandboxMessage
from campaigns.pipeline import campaign_send_work, reconcile
from campaigns.services import campaign_start
from subscribers.models import Subscriber, Suppression, email_hash
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    SuppressionFactory,
    make_audience,
)
from tests.support.sending import message_id


def test_starting_snapshots_the_audience_minus_everyone_excluded(db, smtp_sink):
    topic, subs = make_audience(6)
    SuppressionFactory(hash_of="USER1@example.org", reason="bounce")
    Subscriber.objects.filter(pk=subs[2].pk).update(status=Subscriber.Status.UNCONFIRMED)
    from django.utils import timezone

    Subscriber.objects.filter(pk=subs[3].pk).update(
        paused_until=timezone.now() + timezone.timedelta(days=3)
    )
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    emails = set(Delivery.objects.filter(campaign=campaign).values_list("email", flat=True))
    assert emails == {"user0@example.org", "user4@example.org", "user5@example.org"}
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING
    assert campaign.total == 3
    assert campaign.template_version.number == 1


def test_it_sends_every_recipient_once_over_smtp_and_finishes(db, smtp_sink):
    topic, _ = make_audience(450)
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "done"
    assert sorted(smtp_sink.recipients()) == sorted(f"user{i}@example.org" for i in range(450))
    rows = Delivery.objects.filter(campaign=campaign)
    assert set(rows.values_list("status", flat=True)) == {"sent"}
    assert all(r.message_id == message_id(r.pk, campaign) for r in rows)
    assert all(r.sent_at for r in rows)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.FINISHED


def test_a_suppression_added_during_the_send_is_respected(db, smtp_sink):
    topic, subs = make_audience(5)
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    SuppressionFactory(hash_of=subs[4].email, reason="complaint")
    Subscriber.objects.filter(pk=subs[3].pk).update(status=Subscriber.Status.UNSUBSCRIBED)
    campaign_send_work(campaign_id=campaign.pk)
    assert sorted(smtp_sink.recipients()) == [s.email for s in subs[:3]]
    skipped = Delivery.objects.get(campaign=campaign, subscriber=subs[4])
    assert skipped.status == "skipped" and "suppressed" in skipped.error
    assert "unsubscribed" in Delivery.objects.get(campaign=campaign, subscriber=subs[3]).error


def test_permanent_errors_fail_the_row_and_transient_ones_are_retried_with_backoff(db, smtp_sink):
    topic, _ = make_audience(2)
    make_audience(1, topic=topic, prefix="bad")
    make_audience(1, topic=topic, prefix="busy")
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "idle"
    bad = Delivery.objects.get(campaign=campaign, email="bad0@example.org")
    assert bad.status == "failed" and "550" in bad.error
    # The synchronous refusal took the bounce path: suppressed, counted, on the timeline.
    assert Suppression.objects.filter(email_hash=email_hash("bad0@example.org")).exists()
    assert Event.objects.filter(delivery_id=bad.pk, kind="bounced", esp="smtp").count() == 1
    busy = Delivery.objects.get(campaign=campaign, email="busy0@example.org")
    assert busy.status == "pending" and "451" in busy.error and busy.not_before
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.RUNNING


def test_after_n_consecutive_failures_the_campaign_pauses_itself_and_says_why(db, smtp_sink):
    topic, _ = make_audience(8, prefix="bad")
    campaign = CampaignFactory(
        topic=topic, connection=SendingConnectionFactory(sink=smtp_sink), max_consecutive_failures=3
    )
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "stopped"
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert "3 consecutive failures" in campaign.status_reason and "550" in campaign.status_reason
    assert Delivery.objects.filter(campaign=campaign, status="failed").count() == 3
    assert Delivery.objects.filter(campaign=campaign, status="pending").count() == 5


def test_the_esp_path_goes_through_anymail_with_the_delivery_id_in_metadata(db):
    topic, _ = make_audience(3)
    connection = SendingConnectionFactory(
        name="esp", backend="anymail.backends.test.EmailBackend", sending_domain="sender.example"
    )
    campaign = CampaignFactory(topic=topic, connection=connection, tags=["weekly"])
    campaign_start(campaign=campaign)
    mail.outbox = []
    campaign_send_work(campaign_id=campaign.pk)
    assert len(mail.outbox) == 3
    by_id = {d.pk: d for d in Delivery.objects.filter(campaign=campaign)}
    for message in mail.outbox:
        params = message.anymail_test_params
        delivery = by_id[params["metadata"]["delivery_id"]]
        assert params["to"][0].addr_spec == delivery.email
        assert params["tags"] == ["weekly"]
        assert delivery.status == "sent"


def test_sandbox_mode_never_delivers_and_captures_every_message(db, smtp_sink):
    topic, _ = make_audience(4)
    connection = SendingConnectionFactory(sink=smtp_sink, test_mode=True)
    campaign = CampaignFactory(topic=topic, connection=connection)
    campaign_start(campaign=campaign)
    assert campaign_send_work(campaign_id=campaign.pk) == "done"
    assert smtp_sink.messages == []
    captured = SandboxMessage.objects.filter(campaign=campaign)
    assert captured.count() == 4
    one = captured.first()
    assert one.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Content-Type: multipart/alternative" in one.raw and one.html and one.text


def test_a_campaign_in_test_mode_never_delivers_even_on_a_real_connection(db, smtp_sink):
    topic, _ = make_audience(2)
    campaign = CampaignFactory(
        topic=topic, connection=SendingConnectionFactory(sink=smtp_sink), test_mode=True
    )
    campaign_start(campaign=campaign)
    campaign_send_work(campaign_id=campaign.pk)
    assert smtp_sink.messages == []
    assert SandboxMessage.objects.filter(campaign=campaign).count() == 2


def test_dead_claims_release_untouched_rows_and_expose_the_one_in_handoff(db, monkeypatch):
    monkeypatch.setenv("CAMPAIGN_CLAIM_TTL", "0")
    topic, _ = make_audience(3)
    campaign = CampaignFactory(topic=topic)
    campaign_start(campaign=campaign)
    rows = list(Delivery.objects.filter(campaign=campaign).order_by("id"))
    from django.utils import timezone

    past = timezone.now() - timezone.timedelta(minutes=5)
    Delivery.objects.filter(pk=rows[0].pk).update(status="sent", claim_token="dead")
    Delivery.objects.filter(pk=rows[1].pk).update(
        status="sending", claim_token="dead", claimed_at=past
    )
    Delivery.objects.filter(pk=rows[2].pk).update(
        status="claimed", claim_token="dead", claimed_at=past
    )
    assert reconcile(campaign_id=campaign.pk) == {"released": 1, "unknown": 1}
    statuses = dict(Delivery.objects.filter(campaign=campaign).values_list("id", "status"))
    assert statuses == {rows[0].pk: "sent", rows[1].pk: "unknown", rows[2].pk: "pending"}
    assert "may or may not" in Delivery.objects.get(pk=rows[1].pk).error


def test_a_dead_senders_journal_lands_on_the_ledger_as_it_stood(db):
    """A sender killed between two moves of its journal: what the backend answered is written
    as answered, the message it was handing off becomes unknown, the rest goes back."""
    from django.utils import timezone

    from campaigns.models import Handoff

    topic, _ = make_audience(5)
    campaign = CampaignFactory(topic=topic)
    campaign_start(campaign=campaign)
    rows = list(Delivery.objects.filter(campaign=campaign).order_by("id"))
    past = timezone.now() - timezone.timedelta(minutes=5)
    Delivery.objects.filter(campaign=campaign).update(
        status="claimed", claim_token="dead", claimed_at=past, attempts=1
    )
    Handoff.objects.bulk_create(
        [
            Handoff(
                delivery_id=rows[0].pk,
                token="dead",
                status="sent",
                message_id="<a@x>",
                sent_at=past,
            ),
            Handoff(delivery_id=rows[1].pk, token="dead", status="failed", error="SMTP 550 no"),
            Handoff(
                delivery_id=rows[2].pk,
                token="dead",
                status="pending",
                attempts_adjust=-1,
                error="Retrying (attempt 1 of 8): SMTP 451",
            ),
            Handoff(delivery_id=rows[3].pk, token="dead", status="sending", message_id="<d@x>"),
        ]
    )
    assert reconcile(campaign_id=campaign.pk) == {"released": 1, "unknown": 1}
    after = {d.pk: d for d in Delivery.objects.filter(campaign=campaign)}
    assert [after[r.pk].status for r in rows] == ["sent", "failed", "pending", "unknown", "pending"]
    assert after[rows[0].pk].message_id == "<a@x>" and after[rows[0].pk].sent_at == past
    assert after[rows[1].pk].error == "SMTP 550 no"
    assert after[rows[2].pk].attempts == 0
    assert after[rows[3].pk].message_id == "<d@x>"
    assert "may or may not" in after[rows[3].pk].error
    assert not Handoff.objects.exists()


@pytest.mark.parametrize("resend", [True, False])
def test_unknown_rows_keep_the_campaign_open_until_someone_decides(db, smtp_sink, resend):
    from campaigns.pipeline import campaign_maybe_finish
    from campaigns.services import delivery_resolve_unknown

    topic, _ = make_audience(2)
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    first = Delivery.objects.filter(campaign=campaign).order_by("id").first()
    Delivery.objects.filter(pk=first.pk).update(status="unknown")
    campaign_send_work(campaign_id=campaign.pk)
    assert not campaign_maybe_finish(campaign_id=campaign.pk)
    assert "interrupted" in Campaign.objects.get(pk=campaign.pk).status_reason
    delivery_resolve_unknown(campaign=campaign, resend=resend)
    campaign_send_work(campaign_id=campaign.pk)
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.FINISHED
    assert len(smtp_sink.messages) == (2 if resend else 1)
