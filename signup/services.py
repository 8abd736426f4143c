"""Writes of the capture side: forms, signups, confirmations, views, downloads.

Step 1 saves the address at once (a visitor who leaves at step 2 is still captured, unconfirmed:
campaigns only go to active subscribers); later steps add to the same subscriber. Nothing an
anonymous visitor types may change a person who has already confirmed: their answers wait in
``Signup.pending`` until the owner of the address confirms.

The confirmation email is owed from step 1 (``confirmation_due_at``) but sent when the visitor
finishes the last step, so that it can greet them by the name step 2 asks; a visitor who leaves
after step 1 gets it from the beat's sweep once the grace time has passed. Whoever sends it first
sets ``confirmation_sent_at`` with a conditional UPDATE: it goes out exactly once.
"""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from subscribers.emails import EmailError
from subscribers.models import ConsentRecord, Subscriber, Suppression, Topic, email_hash
from subscribers.services import (
    consent_record,
    subscriber_create,
    suppression_lift,
    topic_subscribe,
)
from webhooks import emit as webhooks_emit

from .email_tasks import signup_send_confirmation, signup_send_welcome
from .emails import download_url
from .models import LeadMagnet, Signup, SignupForm
from .protection import (
    HONEYPOT_FIELD,
    Refused,
    address_key,
    confirmation_window_claim,
    email_check,
    form_token_check,
    pow_spend,
    pow_valid,
    rate_hit,
    step_token_make,
    step_token_read,
)
from .schema import UTM_KEYS, StepData, consent_notice, step_validate, texts

# Suppressions a new signup does not override: mail to these would bounce or be reported.
HARD_SUPPRESSIONS = (Suppression.Reason.HARD_BOUNCE, Suppression.Reason.COMPLAINT)


@dataclass(frozen=True)
class Origin:
    """Where a submission came from (for stats) and who sent it (for the consent record)."""

    page: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    ip: str | None = None
    user_agent: str = ""


def _topics_for(form: SignupForm, step: StepData) -> list[int]:
    """The topics a submission asks for: those ticked, or every topic of the form when it has
    no topic field."""
    if step.topic_ids is None:
        return sorted(topic.pk for topic in form.topics.all())  # prefetched by the view
    # step_validate only lets through ids of the form's topics.
    return list(step.topic_ids)


def _attributes_of(step: StepData) -> dict:
    attributes = dict(step.attributes)
    for key, value in step.hidden.items():
        if key not in UTM_KEYS and value:
            attributes[key] = value
    return attributes


def _apply_now(subscriber: Subscriber, step: StepData) -> None:
    changed = []
    for name, value in step.names.items():
        if value and getattr(subscriber, name) != value:
            setattr(subscriber, name, value)
            changed.append(name)
    attributes = _attributes_of(step)
    if attributes:
        subscriber.attributes = {**(subscriber.attributes or {}), **attributes}
        changed.append("attributes")
    if changed:
        subscriber.save(update_fields=[*changed, "updated_at"])


def _consent_note(signup: Signup, form: SignupForm, step: StepData, *, first_step: bool) -> None:
    """Keep the consent text the visitor agreed to. A form with a consent checkbox records it
    only when ticked; a form without one shows its consent text as a notice next to the
    button, so submitting is the agreement."""
    if step.consent or (first_step and consent_notice(form)):
        signup.consent_text = form.consent_text
        signup.consent_version = form.consent_version
    elif first_step:
        signup.consent_text = signup.consent_version = ""


def _pending_add(signup: Signup, step: StepData, topic_ids: list[int] | None) -> None:
    pending = dict(signup.pending or {})
    pending.setdefault("names", {}).update({k: v for k, v in step.names.items() if v})
    pending.setdefault("attributes", {}).update(_attributes_of(step))
    if topic_ids is not None:
        pending["topic_ids"] = topic_ids
    signup.pending = pending


def signup_start(
    *, form: SignupForm, email: str, step: StepData, origin: Origin, last_step: bool = True
) -> Signup:
    """Step 1: find or create the subscriber (unconfirmed), record the signup, and owe the
    confirmation email (at most one per address per window): sent at once when step 1 is the
    last step, else when the visitor finishes or the grace time runs out. Without double opt-in,
    activate and enqueue the welcome email. ``email`` is already normalized and checked.

    This runs on every submission (see bench/signup.py): for a new address the signup row is
    inserted once, complete, with no lookup of its own."""
    utm = {key: step.hidden.get(key, "") or getattr(origin, key) for key in UTM_KEYS}
    with transaction.atomic():
        subscriber, created = _subscriber_get_or_create(form=form, email=email)
        applies_directly = created or (
            subscriber.status == Subscriber.Status.UNCONFIRMED and subscriber.confirmed_at is None
        )
        # Locked: a sweep must not send the confirmation between this read and the save below.
        signup = (
            None
            if created
            else Signup.objects.select_for_update().filter(form=form, subscriber=subscriber).first()
        )
        if signup is None:
            signup = Signup(
                form=form,
                subscriber=subscriber,
                source_page=origin.page[:500],
                utm_source=utm["utm_source"][:100],
                utm_medium=utm["utm_medium"][:100],
                utm_campaign=utm["utm_campaign"][:100],
                ip=origin.ip,
                user_agent=origin.user_agent[:500],
            )
        # The same person again keeps their first source; what they agreed to is refreshed.
        signup.applies_directly = applies_directly
        _consent_note(signup, form, step, first_step=True)
        if applies_directly:
            _apply_now(subscriber, step)
        _pending_add(signup, step, _topics_for(form, step))
        needs_confirmation = form.double_opt_in or not _may_activate_without_confirmation(
            subscriber
        )
        if needs_confirmation:
            if signup.confirmed_at is None or subscriber.status != Subscriber.Status.ACTIVE:
                signup.confirmed_at = None
                _confirmation_owe(signup, send_now=last_step)
            signup.save()
        else:
            _activate(signup=signup, subscriber=subscriber, ip=origin.ip, ua=origin.user_agent)
            signup.save()
        webhooks_emit.form_submitted(signup.pk)
    return signup


def _subscriber_get_or_create(*, form: SignupForm, email: str) -> tuple[Subscriber, bool]:
    try:
        # subscriber_create runs in its own savepoint: if a concurrent request inserted the same
        # address first, only that savepoint is rolled back and we read the winner's row.
        subscriber = subscriber_create(
            email=email,
            status=Subscriber.Status.UNCONFIRMED,
            source=Subscriber.Source.FORM,
            source_detail=f"form:{form.public_id}",
            language=form.language,
        )
        return subscriber, True
    except (IntegrityError, EmailError):
        # Already there (or inserted by a concurrent request, now committed). Lock the row so
        # that concurrent submissions for one address queue up here: the second one then sees
        # the first one's signup instead of inserting a duplicate. Through lower(email), the
        # unique index's expression (a plain email = %s would scan the table).
        existing = Subscriber.objects.select_for_update().alias(key=Lower("email"))
        return existing.get(key=email), False


def _may_activate_without_confirmation(subscriber: Subscriber) -> bool:
    """Without double opt-in a form activates new people at once, but it never brings back
    someone who left (or whose address is suppressed) on a stranger's word: they confirm."""
    if subscriber.status not in (Subscriber.Status.UNCONFIRMED, Subscriber.Status.ACTIVE):
        return False
    return not Suppression.objects.filter(email_hash=email_hash(subscriber.email)).exists()


def _confirmation_owe(signup: Signup, *, send_now: bool) -> None:
    """Owe the confirmation email, unless the address is hard-suppressed or already had one in
    this window (whatever the form or the number of submissions: a form must never become a way
    to flood someone's inbox). With ``send_now`` it is claimed here (the caller holds the row:
    new, or locked) and enqueued after commit; else it waits for the last step or the grace
    time. The signup row is saved by the caller."""
    if Suppression.objects.filter(
        email_hash=email_hash(signup.subscriber.email), reason__in=HARD_SUPPRESSIONS
    ).exists():
        return
    if not confirmation_window_claim(signup.subscriber.email):
        return
    now = timezone.now()
    if send_now:
        signup.confirmation_due_at = signup.confirmation_sent_at = now
        # The row may not be inserted yet: read its id when the transaction commits.
        transaction.on_commit(lambda: signup_send_confirmation.delay(signup.pk))
    else:
        grace = dt.timedelta(seconds=settings.SIGNUP_CONFIRMATION_GRACE_SECONDS)
        signup.confirmation_due_at = now + grace
        signup.confirmation_sent_at = None


def _confirmations_unsent() -> QuerySet[Signup]:
    return Signup.objects.filter(
        confirmation_due_at__isnull=False,
        confirmation_sent_at__isnull=True,
        confirmed_at__isnull=True,
    )


def signup_confirmation_claim(*, signup_id: int) -> bool:
    """Claim the owed confirmation email of one signup: True for exactly one caller."""
    claimed = (
        _confirmations_unsent().filter(pk=signup_id).update(confirmation_sent_at=timezone.now())
    )
    return claimed == 1


def signups_claim_due_confirmations(*, limit: int = 500) -> list[int]:
    """Claim the confirmations whose grace time ran out (the visitor left before the last
    step): set-based, a row is claimed by exactly one UPDATE whoever else sweeps or finishes."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE signup_signup SET confirmation_sent_at = %s
            WHERE id IN (
                SELECT id FROM signup_signup
                WHERE confirmation_sent_at IS NULL AND confirmed_at IS NULL
                  AND confirmation_due_at <= %s
                ORDER BY confirmation_due_at LIMIT %s
                FOR UPDATE SKIP LOCKED
            ) AND confirmation_sent_at IS NULL
            RETURNING id
            """,
            [now, now, limit],
        )
        return [row[0] for row in cursor.fetchall()]


def signup_continue(
    *, signup: Signup, step_index: int, step: StepData, last_step: bool = False
) -> Signup:
    """A later step (index from 1): add the answers to the same subscriber (or to pending). On
    the last step, send the confirmation email still owed (now that it knows their name)."""
    with transaction.atomic():
        signup = Signup.objects.select_for_update().select_related("subscriber").get(pk=signup.pk)
        topic_ids = _topics_for(signup.form, step) if step.topic_ids is not None else None
        if signup.applies_directly:
            _apply_now(signup.subscriber, step)
            if signup.confirmed_at is not None and topic_ids:
                for topic in Topic.objects.filter(pk__in=topic_ids):
                    topic_subscribe(subscriber=signup.subscriber, topic=topic)
        _pending_add(signup, step, topic_ids)
        _consent_note(signup, signup.form, step, first_step=False)
        signup.steps_completed = max(signup.steps_completed, step_index + 1)
        signup.save()
        if last_step and signup_confirmation_claim(signup_id=signup.pk):
            transaction.on_commit(lambda: signup_send_confirmation.delay(signup.pk))
    return signup


def _activate(*, signup: Signup, subscriber: Subscriber, ip: str | None, ua: str) -> None:
    """Make the subscriber active with what the signup asked for; enqueue the welcome email."""
    now = timezone.now()
    pending = signup.pending or {}
    if not signup.applies_directly:
        for name, value in (pending.get("names") or {}).items():
            setattr(subscriber, name, value)
        if pending.get("attributes"):
            subscriber.attributes = {**(subscriber.attributes or {}), **pending["attributes"]}
    confirming = subscriber.status != Subscriber.Status.ACTIVE
    if confirming:
        subscriber.status = Subscriber.Status.ACTIVE
        subscriber.confirmed_at = now
    subscriber.save()
    if confirming:
        webhooks_emit.subscribers_changed("subscriber.confirmed", [subscriber.pk])
    for topic in Topic.objects.filter(pk__in=pending.get("topic_ids") or []):
        topic_subscribe(subscriber=subscriber, topic=topic)
    if signup.consent_text:
        consent_record(
            subscriber=subscriber,
            text=signup.consent_text,
            version=signup.consent_version,
            where=ConsentRecord.Where.FORM,
            ip=ip,
            user_agent=ua,
        )
    # They asked for it themselves, with proof of owning the address (or the form's word).
    suppression_lift(email=subscriber.email)
    signup.confirmed_at = now
    signup.pending = {"topic_ids": pending.get("topic_ids") or []}
    if signup.form.lead_magnet_id or signup.form.welcome_templates.exists():
        transaction.on_commit(lambda: signup_send_welcome.delay(signup.pk))


def signup_confirm(*, signup_id: int, ip: str | None, user_agent: str) -> Signup | None:
    """The owner of the address confirmed (POST on the link): activate, record the consent.
    Idempotent: a second POST changes nothing. None if the signup no longer exists."""
    with transaction.atomic():
        signup = (
            Signup.objects.select_for_update(of=("self",))
            .select_related("subscriber", "form", "form__lead_magnet")
            .filter(pk=signup_id)
            .first()
        )
        if signup is None:
            return None
        if signup.confirmed_at is None:
            _activate(signup=signup, subscriber=signup.subscriber, ip=ip, ua=user_agent[:500])
            signup.save()
    return signup


def form_view_count(*, form: SignupForm, origin: Origin) -> None:
    """One more view for this form, day, page and UTM: a single upsert, no read."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO signup_formview
                (form_id, day, source_page, utm_source, utm_medium, utm_campaign, count)
            VALUES (%s, %s, %s, %s, %s, %s, 1)
            ON CONFLICT (form_id, day, source_page, utm_source, utm_medium, utm_campaign)
            DO UPDATE SET count = signup_formview.count + 1
            """,
            [
                form.pk,
                timezone.localdate(),
                origin.page[:500],
                origin.utm_source[:100],
                origin.utm_medium[:100],
                origin.utm_campaign[:100],
            ],
        )


def lead_magnet_download(*, signup_id: int, magnet: LeadMagnet) -> None:
    now = timezone.now()
    LeadMagnet.objects.filter(pk=magnet.pk).update(downloads=F("downloads") + 1)
    Signup.objects.filter(pk=signup_id, downloaded_at__isnull=True).update(downloaded_at=now)


def signups_claim_reminders(*, limit: int = 500) -> list[int]:
    """Claim the signups due for their one reminder (set-based, safe with several beats or
    workers: a row is claimed by exactly one UPDATE)."""
    due = timezone.now() - dt.timedelta(hours=settings.SIGNUP_REMINDER_HOURS)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE signup_signup SET reminder_sent_at = CURRENT_TIMESTAMP
            WHERE id IN (
                SELECT s.id FROM signup_signup s
                JOIN subscribers_subscriber sub ON sub.id = s.subscriber_id
                WHERE s.confirmed_at IS NULL AND s.reminder_sent_at IS NULL
                  AND s.confirmation_sent_at < %s AND sub.status <> 'active'
                ORDER BY s.id LIMIT %s
                FOR UPDATE OF s SKIP LOCKED
            )
            RETURNING id
            """,
            [due, limit],
        )
        return [row[0] for row in cursor.fetchall()]


def subscribers_purge_unconfirmed(*, days: int | None = None, batch: int = 1000) -> int:
    """Delete subscribers who came through a form and never confirmed within N days."""
    days = settings.SIGNUP_PURGE_DAYS if days is None else days
    cutoff = timezone.now() - dt.timedelta(days=days)
    stale = Subscriber.objects.filter(
        status=Subscriber.Status.UNCONFIRMED,
        confirmed_at__isnull=True,
        created_at__lt=cutoff,
        signups__isnull=False,
    ).exclude(signups__confirmed_at__isnull=False)
    deleted = 0
    # In batches, through the ORM (other apps' on_delete rules apply) with bounded memory: a bot
    # wave can leave many thousands of unconfirmed rows behind.
    while ids := list(stale.values_list("pk", flat=True)[:batch]):
        with transaction.atomic():
            _, per_model = Subscriber.objects.filter(pk__in=ids).delete()
        deleted += per_model.get(Subscriber._meta.label, 0)
    return deleted


# --- a visitor's submission ---------------------------------------------------------------------


@dataclass
class SubmitResult:
    """What one step's submission came to, for the view to answer (JSON or a page): errors
    to show, the next step to ask, or the end (a message, a redirect, a download link)."""

    status: int = 200
    errors: dict[str, str] = field(default_factory=dict)
    error: str = ""  # the whole step refused, in the visitor's words
    next_step: int | None = None
    signup_token: str = ""
    message: str = ""
    redirect: str = ""
    download_url: str = ""


def signup_submit(
    *, form: SignupForm, layout: list[dict], step: int, data: Mapping[str, Any], origin: Origin
) -> SubmitResult:
    """One step of a visitor's submission (``data``: the POST; ``layout``: the form's steps,
    as ``form_layout`` resolved them for this request): the honeypot, the form token, the
    rate limits and the proof of work, then start the signup (step 0) or continue it."""
    words = texts(form.language)
    last_step = step == len(layout) - 1
    # A bot that fills the hidden field gets exactly what a person would see, and nothing else.
    if data.get(HONEYPOT_FIELD):
        return _submit_finished(form, words, step, last_step, None, not form.double_opt_in)
    try:
        # The minimum fill time applies to step 1; later steps come after an answer from us.
        min_fill = form.min_fill_seconds if step == 0 else 0
        form_token_check(data.get("token", ""), form_id=form.pk, min_fill_seconds=min_fill)
        if not rate_hit(
            f"ip:{origin.ip}",
            limit=settings.SIGNUP_RATE_PER_IP,
            window=settings.SIGNUP_RATE_IP_WINDOW,
        ):
            raise Refused("rate_limited", 429)
        answers, errors = step_validate(layout[step]["fields"], data, language=form.language)
        if step == 0:
            signup, activated = _submit_first(
                form, words, data, answers, errors, origin=origin, last_step=last_step
            )
        else:
            signup_id = step_token_read(data.get("signup", ""), form_id=form.pk)
            if errors:
                raise _Invalid(errors)
            signup = Signup.objects.filter(pk=signup_id, form=form).first() if signup_id else None
            if signup is not None:
                signup = signup_continue(
                    signup=signup, step_index=step, step=answers, last_step=last_step
                )
            activated = bool(signup and signup.confirmed_at)
    except _Invalid as exc:
        return SubmitResult(400, errors=exc.errors)
    except Refused as exc:
        return SubmitResult(exc.status, error=words[exc.code])
    return _submit_finished(form, words, step, last_step, signup, activated)


class _Invalid(Exception):
    """The step's answers do not validate (``errors``: field name -> message)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__(errors)
        self.errors = errors


def _submit_first(
    form: SignupForm,
    words: dict[str, str],
    data: Mapping[str, Any],
    answers: StepData,
    errors: dict,
    *,
    origin: Origin,
    last_step: bool,
) -> tuple[Signup | None, bool]:
    """Step 1: the address checked, the proof of work spent, then the signup started.
    Returns the signup (None when nothing was done) and whether the address is active."""
    email, problem = "", ""
    if "email" not in errors:
        email, problem = email_check(
            answers.email, reject_disposable=form.reject_disposable, check_dns=form.check_dns
        )
    if problem:
        errors["email"] = words[problem]
    if errors:
        raise _Invalid(errors)
    token = data.get("token", "")
    if form.proof_of_work and not (
        pow_valid(token, data.get("pow", ""), settings.SIGNUP_POW_BITS) and pow_spend(token)
    ):
        raise Refused("pow", 400)
    if not rate_hit(
        f"address:{address_key(email)}",
        limit=settings.SIGNUP_RATE_PER_ADDRESS,
        window=settings.SIGNUP_RATE_ADDRESS_WINDOW,
    ):
        # Someone is hammering one address: answer as usual, do nothing.
        return None, not form.double_opt_in
    signup = signup_start(form=form, email=email, step=answers, origin=origin, last_step=last_step)
    return signup, signup.confirmed_at is not None


def _submit_finished(
    form: SignupForm,
    words: dict[str, str],
    step: int,
    last_step: bool,
    signup: Signup | None,
    activated: bool,
) -> SubmitResult:
    """The next step to ask, or the end of the form."""
    if not last_step:
        return SubmitResult(
            next_step=step + 1,
            signup_token=step_token_make(signup_id=signup.pk if signup else 0, form_id=form.pk),
        )
    # With double opt-in the form's own message speaks of the pending confirmation: an
    # address confirmed already (nothing to confirm, no email sent) gets the built-in text.
    custom = form.success_message if activated == (not form.double_opt_in) else ""
    return SubmitResult(
        message=custom or words["success_no_doi" if activated else "success"],
        redirect=form.redirect_url if form.success_action == form.SuccessAction.REDIRECT else "",
        download_url=download_url(signup) if (signup and activated and signup.confirmed_at) else "",
    )
