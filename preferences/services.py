"""What recipients change about themselves from the preference center and the exit survey."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from analytics.ingest import ingestion_lock
from analytics.models import Event
from analytics.services import leaving_record
from subscribers import services as subscriber_services
from subscribers.models import (
    ConsentRecord,
    Subscriber,
    Subscription,
    Suppression,
    Topic,
    email_hash,
)

from .models import ExitSurveyReason, ExitSurveyResponse, PreferenceCenterSettings

CONSENT_TEXT_VERSION = "preference-center-1"
FREQUENCY_CHOICES = (1, 2, 4)  # "send me less": at most this many campaigns a month
PAUSE_MONTHS = (1, 3)


def _record(
    subscriber: Subscriber,
    *,
    delivery_id: int | None,
    kind: str,
    what: str,
    how: str,
    **detail: Any,
) -> None:
    """The change, as an Event through analytics ingestion: the campaign whose link was used
    counts the leave once (report, export, rollups) and the timelines show it."""
    leaving_record(
        subscriber_id=subscriber.pk,
        email=subscriber.email,
        delivery_id=delivery_id,
        kind=kind,
        what=what,
        how=how,
        **detail,
    )


def _lock_for_recording() -> None:
    # Ingestion's lock before the subscriber's rows, in the order ingestion itself takes them
    # (its feedback loop updates subscribers under this lock): the two can never deadlock.

    ingestion_lock()


@transaction.atomic
def preferences_set_topics(
    *,
    subscriber: Subscriber,
    topic_ids: set[int],
    delivery_id: int | None = None,
    how: str = "preferences",
) -> None:
    """Subscribe to exactly these topics; other topics the subscriber had are turned off.
    Topics turned off count as leaving from the campaign whose link was used."""
    _lock_for_recording()
    before = dict(
        Subscription.objects.filter(subscriber=subscriber).values_list("topic_id", "status")
    )
    left, back = [], []
    for topic in Topic.objects.order_by("name", "id"):
        status = before.get(topic.pk)
        if topic.pk in topic_ids:
            if status != Subscription.Status.ACTIVE:
                subscriber_services.topic_subscribe(subscriber=subscriber, topic=topic)
            if status == Subscription.Status.UNSUBSCRIBED:
                back.append(topic.name)
        elif status == Subscription.Status.ACTIVE:
            subscriber_services.topic_unsubscribe(subscriber=subscriber, topic=topic)
            left.append(topic.name)
    if left:
        _record(
            subscriber,
            delivery_id=delivery_id,
            kind=Event.Kind.UNSUBSCRIBED,
            what="topics",
            how=how,
            topics=left,
        )
    if back:
        _record(
            subscriber,
            delivery_id=delivery_id,
            kind=Event.Kind.RESUBSCRIBED,
            what="topics",
            how=how,
            topics=back,
        )


@transaction.atomic
def subscriber_pause(
    *, subscriber: Subscriber, months: int, delivery_id: int | None = None, how: str = "preferences"
) -> None:
    """No email for a while: a way of leaving, counted against the campaign whose link it was."""
    if months not in PAUSE_MONTHS:
        raise ValueError(f"pause must be one of {PAUSE_MONTHS} months")
    _lock_for_recording()
    subscriber.paused_until = timezone.now() + timedelta(days=30 * months)
    subscriber.save(update_fields=["paused_until", "updated_at"])
    _record(
        subscriber,
        delivery_id=delivery_id,
        kind=Event.Kind.UNSUBSCRIBED,
        what="pause",
        how=how,
        months=months,
    )


@transaction.atomic
def subscriber_resume(
    *, subscriber: Subscriber, delivery_id: int | None = None, how: str = "preferences"
) -> None:
    _lock_for_recording()
    was_paused = bool(subscriber.paused_until and subscriber.paused_until > timezone.now())
    subscriber.paused_until = None
    subscriber.save(update_fields=["paused_until", "updated_at"])
    if was_paused:
        _record(
            subscriber,
            delivery_id=delivery_id,
            kind=Event.Kind.RESUBSCRIBED,
            what="resume",
            how=how,
        )


def subscriber_set_frequency(*, subscriber: Subscriber, per_month: int | None) -> None:
    if per_month is not None and per_month not in FREQUENCY_CHOICES:
        raise ValueError(f"per_month must be one of {FREQUENCY_CHOICES} or None")
    subscriber.max_campaigns_per_month = per_month
    subscriber.save(update_fields=["max_campaigns_per_month", "updated_at"])


def subscriber_update_profile(
    *, subscriber: Subscriber, first_name: str, last_name: str, language: str, attributes: dict
) -> None:
    subscriber.first_name = first_name
    subscriber.last_name = last_name
    subscriber.language = language
    subscriber.attributes = {**subscriber.attributes, **attributes}
    subscriber.save(
        update_fields=["first_name", "last_name", "language", "attributes", "updated_at"]
    )


@transaction.atomic
def subscriber_leave(
    *, subscriber: Subscriber, source: str, delivery_id: int | None = None
) -> bool:
    """Unsubscribe from everything. Returns False when they had already left (idempotent:
    the one-click POST then the page's button is one leave, recorded and counted once)."""
    _lock_for_recording()
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    if subscriber.status == Subscriber.Status.UNSUBSCRIBED:
        return False
    subscriber_services.subscriber_unsubscribe(subscriber=subscriber, source=source)
    _record(
        subscriber, delivery_id=delivery_id, kind=Event.Kind.UNSUBSCRIBED, what="all", how=source
    )
    if PreferenceCenterSettings.load().send_goodbye_email:
        transaction.on_commit(lambda: _send_goodbye(subscriber))
    return True


def _send_goodbye(subscriber: Subscriber) -> None:
    with translation.override(subscriber.language):
        send_mail(
            subject=_("You are unsubscribed"),
            message=_(
                "You will not receive any more emails from %(company)s. "
                "If this was a mistake, open any of our past emails and use the preferences "
                "link to subscribe again."
            )
            % {"company": settings.COMPANY_NAME},
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[subscriber.email],
            fail_silently=True,  # a goodbye is a courtesy; losing it must not undo the leave
        )


@transaction.atomic
def subscriber_resubscribe(
    *,
    subscriber: Subscriber,
    ip: str | None,
    user_agent: str,
    consent_text: str,
    delivery_id: int | None = None,
    how: str = "preferences",
) -> bool:
    """They asked to come back themselves: new consent, suppression lifted, status active, and
    the topics they had when they left switched back on. True when they had left.

    Only an 'unsubscribed' suppression is lifted: bounces and complaints are not the
    recipient's to undo from a link.
    """
    _lock_for_recording()
    subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    came_back = subscriber.status == Subscriber.Status.UNSUBSCRIBED
    if came_back:
        # Leaving switched every active topic off in one statement, with one timestamp.
        left_at = (
            subscriber.subscriptions.filter(status=Subscription.Status.UNSUBSCRIBED)
            .order_by("-unsubscribed_at")
            .values_list("unsubscribed_at", flat=True)
            .first()
        )
        if left_at:
            subscriber.subscriptions.filter(unsubscribed_at=left_at).update(
                status=Subscription.Status.ACTIVE, unsubscribed_at=None, updated_at=timezone.now()
            )
    Suppression.objects.filter(
        email_hash=email_hash(subscriber.email), reason=Suppression.Reason.UNSUBSCRIBED
    ).delete()
    subscriber.status = Subscriber.Status.ACTIVE
    subscriber.confirmed_at = subscriber.confirmed_at or timezone.now()
    subscriber.save(update_fields=["status", "confirmed_at", "updated_at"])
    subscriber_services.consent_record(
        subscriber=subscriber,
        text=consent_text,
        version=CONSENT_TEXT_VERSION,
        where=ConsentRecord.Where.PREFERENCES,
        ip=ip,
        user_agent=user_agent,
    )
    if came_back:
        _record(
            subscriber, delivery_id=delivery_id, kind=Event.Kind.RESUBSCRIBED, what="all", how=how
        )
    return came_back


def exit_survey_answer(
    *,
    subscriber: Subscriber,
    campaign_id: int | None,
    reasons: list[str],
    other_text: str,
    language: str,
) -> ExitSurveyResponse:
    known = set(ExitSurveyReason.objects.filter(active=True).values_list("key", flat=True))
    reasons = [key for key in dict.fromkeys(reasons) if key in known]
    response, _ = ExitSurveyResponse.objects.update_or_create(
        subscriber=subscriber,
        # None matches the answer given with no campaign (IS NULL); the stubs refuse None here.
        campaign_id=campaign_id,  # type: ignore[misc]
        defaults={
            "reasons": reasons,
            "other_text": other_text.strip()[:2000],
            "language": language,
        },
    )
    return response


def exit_survey_forget(subscriber: Subscriber) -> None:
    """Erasure hook: the free text may name the person; the reasons stay for the report."""
    ExitSurveyResponse.objects.filter(subscriber=subscriber).update(subscriber=None, other_text="")
