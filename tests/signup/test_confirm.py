import datetime as dt
import re

import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from signup.models import LeadMagnet, Signup
from signup.services import signups_claim_reminders, subscribers_purge_unconfirmed
from signup.tasks import signup_send_reminders
from subscribers.models import ConsentRecord, Subscriber, Suppression
from templates_app.models import Template
from templates_app.services import template_create
from tests.support.factories import (
    LeadMagnetFactory,
    SubscriberFactory,
    SuppressionFactory,
)
from tests.support.signup import beat_sweeps, post_step

CONFIRM_RE = re.compile(r"https?://[^\s\"<>]+/forms/c/[^\s\"<>/]+/")
DOWNLOAD_RE = re.compile(r"https?://[^\s\"<>]+/forms/d/[^\s\"<>/]+/")


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]


@pytest.fixture
def started(client, signup_form, topics, eager, django_capture_on_commit_callbacks):
    """Ada went through both steps and has the confirmation email."""
    with django_capture_on_commit_callbacks(execute=True):
        first = post_step(client, signup_form, email="ada@example.com", consent="1").json()
        post_step(
            client,
            signup_form,
            step=1,
            signup=first["signup"],
            first_name="Ada",
            topics=[str(topics[0].pk)],
        )
    (message,) = mail.outbox
    return CONFIRM_RE.search(message.body).group(0)


def test_the_confirmation_link_shows_a_button_and_a_get_changes_nothing(client, started):
    page = client.get(_path(started))
    assert page.status_code == 200
    assert b"Yes, subscribe me" in page.content and b'method="post"' in page.content
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.UNCONFIRMED
    assert not ConsentRecord.objects.exists()


def test_posting_the_confirmation_activates_subscribes_and_records_consent(
    client, started, topics, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            _path(started), REMOTE_ADDR="198.51.100.20", HTTP_USER_AGENT="Firefox/140"
        )
    assert response.status_code == 200 and b"You are subscribed" in response.content
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.ACTIVE and subscriber.confirmed_at
    assert list(subscriber.subscriptions.values_list("topic", flat=True)) == [topics[0].pk]
    record = ConsentRecord.objects.get()
    assert record.text == "I agree to receive the weekly letter."
    assert record.version == "v3"
    assert record.ip == "198.51.100.20" and record.user_agent == "Firefox/140"
    assert record.where == ConsentRecord.Where.FORM and record.created_at
    assert Signup.objects.get().confirmed_at is not None
    # A second POST (double click, scanner) changes nothing.
    client.post(_path(started))
    assert ConsentRecord.objects.count() == 1


def test_confirming_lifts_an_old_unsubscribe_suppression(
    client, signup_form, eager, no_grace, django_capture_on_commit_callbacks
):
    SubscriberFactory(email="ada@example.com", status=Subscriber.Status.UNSUBSCRIBED)
    SuppressionFactory(
        email="ada@example.com",
        reason=Suppression.Reason.UNSUBSCRIBED,
    )
    with django_capture_on_commit_callbacks(execute=True):
        post_step(client, signup_form, email="ada@example.com", consent="1")
    beat_sweeps()
    link = CONFIRM_RE.search(mail.outbox[0].body).group(0)
    assert Subscriber.objects.get().status == Subscriber.Status.UNSUBSCRIBED
    client.post(_path(link))
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE
    assert not Suppression.objects.exists()


def test_a_hard_bounced_address_gets_no_confirmation(
    client, signup_form, eager, django_capture_on_commit_callbacks
):

    SuppressionFactory(hash_of="gone@example.com", reason=Suppression.Reason.HARD_BOUNCE)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_step(client, signup_form, email="gone@example.com", consent="1")
    assert response.status_code == 200
    assert mail.outbox == []


def test_a_tampered_confirmation_link_is_not_found(client, started):
    assert client.get(_path(started)[:-3] + "xx/").status_code == 404
    assert client.post(_path(started)[:-3] + "xx/").status_code == 404
    assert Subscriber.objects.get().status == Subscriber.Status.UNCONFIRMED


def test_the_confirmation_uses_the_template_in_the_subscribers_language(
    client, signup_form, eager, no_grace, django_capture_on_commit_callbacks
):
    english = template_create(
        kind=Template.Kind.CANNED_REPLY,
        name="Confirm (en)",
        language="en",
        subject="Confirm please",
        html_body='<p>Click <a href="{{ confirm_url }}">here</a></p>',
    )
    french = template_create(
        kind=Template.Kind.CANNED_REPLY,
        name="Confirmer (fr)",
        language="fr",
        subject="Merci de confirmer, {{ email }}",
        html_body='<p>Cliquez <a href="{{ confirm_url }}">ici</a></p>',
    )
    signup_form.confirmation_templates.set([english, french])
    signup_form.language = "fr"
    signup_form.save()
    with django_capture_on_commit_callbacks(execute=True):
        post_step(client, signup_form, email="zoe@example.fr", consent="1")
    beat_sweeps()
    (message,) = mail.outbox
    assert message.subject == "Merci de confirmer, zoe@example.fr"
    html = message.alternatives[0][0]
    assert "Cliquez" in html and CONFIRM_RE.search(html)
    assert Subscriber.objects.get().language == "fr"


def test_the_built_in_confirmation_is_used_when_no_template_is_chosen(started):
    message = mail.outbox[0]
    assert message.subject == "Please confirm your subscription"
    # Rendered when the task runs (here after both steps): the name from step 2 is used.
    assert "Hello Ada," in message.body
    assert started in message.alternatives[0][0]


def test_one_reminder_goes_out_48_hours_after_an_unanswered_confirmation(
    client, started, django_capture_on_commit_callbacks
):
    signup = Signup.objects.get()
    assert signups_claim_reminders() == []  # not yet due
    Signup.objects.filter(pk=signup.pk).update(
        confirmation_sent_at=timezone.now() - dt.timedelta(hours=49)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert signup_send_reminders() == 1
        assert signup_send_reminders() == 0  # only one reminder, ever
    assert len(mail.outbox) == 2
    assert mail.outbox[1].subject.startswith("Reminder: ")
    assert CONFIRM_RE.search(mail.outbox[1].body)


def test_unconfirmed_signups_are_purged_after_n_days_and_confirmed_ones_stay(
    client, signup_form, eager, no_grace, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_step(client, signup_form, email="old@example.com", consent="1")
        post_step(client, signup_form, email="kept@example.com", consent="1")
        post_step(client, signup_form, email="older@example.com", consent="1")
    beat_sweeps()
    (kept,) = (m for m in mail.outbox if m.to == ["kept@example.com"])
    kept_link = CONFIRM_RE.search(kept.body).group(0)
    client.post(_path(kept_link))
    SubscriberFactory(email="imported@example.com")  # not from a form: not ours to purge
    Subscriber.objects.update(created_at=timezone.now() - dt.timedelta(days=30))
    assert subscribers_purge_unconfirmed(days=14, batch=1) == 2
    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "kept@example.com",
        "imported@example.com",
    }


def test_the_periodic_tasks_are_created_by_a_migration(db):
    tasks = dict(PeriodicTask.objects.values_list("task", "enabled"))
    assert tasks["signup.tasks.signup_send_reminders"] is True
    assert tasks["signup.tasks.signup_purge_unconfirmed"] is True
    assert tasks["signup.tasks.signup_send_due_confirmations"] is True


@pytest.fixture
def magnet(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    magnet = LeadMagnet(name="The checklist", link_hours=24)
    magnet.file.save("checklist.pdf", ContentFile(b"%PDF-1.4 checklist"), save=True)
    return magnet


def test_the_lead_magnet_is_delivered_after_confirmation_and_counted(
    client, signup_form, magnet, eager, no_grace, django_capture_on_commit_callbacks
):
    signup_form.lead_magnet = magnet
    signup_form.save()
    with django_capture_on_commit_callbacks(execute=True):
        post_step(client, signup_form, email="ada@example.com", consent="1")
    beat_sweeps()
    assert not DOWNLOAD_RE.search(mail.outbox[0].body)  # nothing before confirming
    link = CONFIRM_RE.search(mail.outbox[0].body).group(0)
    with django_capture_on_commit_callbacks(execute=True):
        thanks = client.post(_path(link))
    on_page = DOWNLOAD_RE.search(thanks.content.decode()).group(0)
    welcome = mail.outbox[1]
    assert welcome.subject == "Welcome!"
    in_email = DOWNLOAD_RE.search(welcome.body).group(0)
    for url in (on_page, in_email):
        response = client.get(_path(url))
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == b"%PDF-1.4 checklist"
        assert "attachment" in response["Content-Disposition"]
    magnet.refresh_from_db()
    assert magnet.downloads == 2
    assert Signup.objects.get().downloaded_at is not None


def test_a_lead_magnet_link_expires(client, signup_form, magnet, eager):
    from core.tokens import make_token
    from signup.emails import DOWNLOAD_TOKEN

    magnet.link_hours = 1
    magnet.save()
    signup_form.lead_magnet = magnet
    signup_form.save()
    post_step(client, signup_form, email="ada@example.com", consent="1")
    signup = Signup.objects.get()
    Signup.objects.filter(pk=signup.pk).update(confirmed_at=timezone.now())
    import time

    real = time.time
    try:
        time.time = lambda: real() - 2 * 3600
        old = make_token(DOWNLOAD_TOKEN, {"s": signup.pk, "m": magnet.pk})
    finally:
        time.time = real
    assert client.get(f"/forms/d/{old}/").status_code == 404
    fresh = make_token(DOWNLOAD_TOKEN, {"s": signup.pk, "m": magnet.pk})
    assert client.get(f"/forms/d/{fresh}/").status_code == 200
    magnet.refresh_from_db()
    assert magnet.downloads == 1


def test_a_url_lead_magnet_redirects_through_the_signed_link(
    client, signup_form, eager, django_capture_on_commit_callbacks
):
    signup_form.lead_magnet = LeadMagnetFactory(
        name="Guide", url="https://cdn.example.com/guide.pdf"
    )
    signup_form.double_opt_in = False
    signup_form.save()
    with django_capture_on_commit_callbacks(execute=True):
        answer = post_step(client, signup_form, email="ada@example.com", consent="1").json()
        done = post_step(client, signup_form, step=1, signup=answer["signup"], first_name="A")
    url = done.json()["download_url"]  # no double opt-in: on the thank-you answer at once
    response = client.get(_path(url))
    assert response.status_code == 302
    assert response["Location"] == "https://cdn.example.com/guide.pdf"
    assert DOWNLOAD_RE.search(mail.outbox[0].body)  # and in the welcome email


def test_campaigns_reach_a_form_signup_only_after_confirmation(client, started):
    from subscribers.selectors import subscribers_sendable

    assert not subscribers_sendable().exists()  # captured, unconfirmed: never mailed
    client.post(_path(started))
    assert list(subscribers_sendable().values_list("email", flat=True)) == ["ada@example.com"]


def test_an_unticked_optional_consent_box_records_no_consent(
    client, signup_form, eager, no_grace, django_capture_on_commit_callbacks
):
    signup_form.steps[0]["fields"][1]["required"] = False
    signup_form.save()
    with django_capture_on_commit_callbacks(execute=True):
        post_step(client, signup_form, email="ada@example.com")
    beat_sweeps()
    client.post(_path(CONFIRM_RE.search(mail.outbox[0].body).group(0)))
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE
    assert not ConsentRecord.objects.exists()


def test_a_form_without_a_checkbox_shows_its_consent_text_and_records_it(
    client, signup_form, eager, no_grace, django_capture_on_commit_callbacks
):
    signup_form.steps[0]["fields"].pop(1)
    signup_form.save()
    page = client.get(f"/forms/f/{signup_form.public_id}/")
    assert b"I agree to receive the weekly letter." in page.content
    config = client.get(f"/forms/f/{signup_form.public_id}/config.json").json()
    assert config["consent_notice"] == "I agree to receive the weekly letter."
    with django_capture_on_commit_callbacks(execute=True):
        post_step(client, signup_form, email="ada@example.com")
    beat_sweeps()
    client.post(_path(CONFIRM_RE.search(mail.outbox[0].body).group(0)))
    assert ConsentRecord.objects.get().version == "v3"


def test_a_lead_magnet_file_is_stored_under_an_unguessable_path(db, magnet):
    directory = magnet.file.name.split("/")[1]
    assert magnet.file.name.startswith("lead-magnets/") and len(directory) >= 16
    assert magnet.file.name.endswith("/checklist.pdf")


def _days_later(monkeypatch, days: float) -> None:
    """The clock the signed link is checked against, moved forward."""
    import time

    from django.core import signing

    now = time.time() + days * 86400
    monkeypatch.setattr(signing.time, "time", lambda: now)


def test_the_confirmation_link_expires(client, started, monkeypatch, settings):
    assert settings.SIGNUP_PURGE_DAYS == 14
    _days_later(monkeypatch, 14 + 0.01)
    assert client.get(_path(started)).status_code == 404
    response = client.post(_path(started))
    assert response.status_code == 404
    assert Subscriber.objects.get().status == Subscriber.Status.UNCONFIRMED
    assert Signup.objects.get().confirmed_at is None
    assert not ConsentRecord.objects.exists()


def test_the_confirmation_link_still_works_until_it_expires(client, started, monkeypatch):
    _days_later(monkeypatch, 13.9)
    assert client.post(_path(started)).status_code == 200
    assert Subscriber.objects.get().status == Subscriber.Status.ACTIVE
