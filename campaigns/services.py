"""Writes on campaigns: the one transition function, scheduling, starting, duplication."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F
from django.db.models.functions import Lower
from django.utils import timezone

from analytics.guardrail import campaign_hold_check
from analytics.models import Link
from core.roles import Role, role_of
from templates_app.rendering import compile_version

from .models import SENDER_AND_TRACKING_FIELDS, Campaign, CampaignTransitionError, Delivery
from .preflight import blocking_findings
from .scheduling import local_to_utc, next_weekly_occurrence
from .selectors import EmailDomain, EmailHash, audience_queryset
from .send_tasks import campaign_kick_on_commit
from .transitions import TRANSITIONS, campaign_transition

__all__ = ["TRANSITIONS", "campaign_transition"]

S = Campaign.Status


def _first_run_at(campaign: Campaign, now: datetime) -> datetime:
    kind = campaign.schedule_kind
    if kind == Campaign.ScheduleKind.NOW:
        return now
    if kind == Campaign.ScheduleKind.ONCE:
        # A wall-clock date and time in the campaign's zone (the form has already refused a
        # time the clocks skip; local_to_utc documents what it does with one from elsewhere).
        local = campaign.send_at_local
        if local is None:
            raise CampaignTransitionError("Choose the date and time to send at.")
        return local_to_utc(local, campaign.schedule_timezone)
    if campaign.recurring_weekday is None or campaign.recurring_hour is None:
        raise CampaignTransitionError("Choose the weekday and hour of the recurring campaign.")
    return next_weekly_occurrence(
        weekday=campaign.recurring_weekday,
        hour=campaign.recurring_hour,
        tz_name=campaign.schedule_timezone,
        after=now,
    )


def campaign_schedule(
    *,
    campaign: Campaign,
    user: User | None = None,
    override: bool = False,
    now: datetime | None = None,
    check_links: bool = False,
) -> Campaign:
    """Draft -> scheduled. Blocking pre-flight findings refuse it unless an admin overrides."""

    now = now or timezone.now()
    blocking = blocking_findings(campaign, check_links=check_links)
    if blocking:
        if not override:
            raise CampaignTransitionError(
                "Pre-flight found blocking problems: "
                + "; ".join(f.message for f in blocking)
                + " Fix them, or ask an admin to override."
            )
        if user is None or role_of(user) != Role.ADMIN:
            raise CampaignTransitionError("Only an admin can override blocking findings.")
        campaign.preflight_override_by = user
    campaign.next_run_at = _first_run_at(campaign, now)
    campaign.save(update_fields=["next_run_at", "preflight_override_by", "updated_at"])
    return campaign_transition(campaign=campaign, to=S.SCHEDULED)


def campaign_unschedule(*, campaign: Campaign) -> Campaign:
    campaign_transition(campaign=campaign, to=S.DRAFT)
    Campaign.objects.filter(pk=campaign.pk).update(next_run_at=None)
    campaign.next_run_at = None
    return campaign


def _snapshot(campaign: Campaign) -> int:
    """One INSERT ... SELECT of the audience into the ledger (unique per subscriber)."""
    qs = audience_queryset(campaign).values_list(
        "pk", "email", EmailHash(_lower("email")), EmailDomain("email")
    )
    sql, params = qs.order_by("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        # The SELECT is Django's own compiled audience query, parameters kept separate.
        statement = "".join(
            [
                "INSERT INTO campaigns_delivery (campaign_id, subscriber_id, email, email_hash, ",
                "domain, status, claim_token, attempts, message_id, error, created_at) ",
                "SELECT %s, a.*, 'pending', '', 0, '', '', now() FROM (",
                sql,
                ") AS a ON CONFLICT (campaign_id, subscriber_id) DO NOTHING",
            ]
        )
        cursor.execute(statement, [campaign.pk, *params])
        return cursor.rowcount


def _hold_until_local_hour(campaign: Campaign) -> None:
    """Recipient's local time window: each row waits (not_before) until the next time it is
    ``local_send_hour`` o'clock where the subscriber lives. One UPDATE for the whole ledger;
    an unknown time zone name falls back to the campaign's."""
    if campaign.local_send_hour is None:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH zones AS (
              SELECT d.id, CASE WHEN s.timezone IN (SELECT name FROM pg_timezone_names)
                                THEN s.timezone ELSE %(tz)s END AS tz
              FROM campaigns_delivery d JOIN subscribers_subscriber s ON s.id = d.subscriber_id
              WHERE d.campaign_id = %(campaign)s
            ), local AS (
              SELECT id, (date_trunc('day', now() AT TIME ZONE tz)
                          + %(hour)s * interval '1 hour') AT TIME ZONE tz AS today_at
              FROM zones
            )
            UPDATE campaigns_delivery d SET not_before = CASE
                WHEN local.today_at >= now() THEN local.today_at
                ELSE local.today_at + interval '1 day' END
            FROM local WHERE d.id = local.id
            """,
            {
                "tz": campaign.schedule_timezone,
                "campaign": campaign.pk,
                "hour": campaign.local_send_hour,
            },
        )


def _lower(field: str) -> Lower:
    return Lower(field)


def campaign_pin_content(*, campaign: Campaign) -> None:
    """Pin the template's current version and create the Link rows once per campaign."""
    if campaign.template_id is None:
        raise CampaignTransitionError("Choose a template before sending.")
    if campaign.template_version_id is None:
        template = campaign.template
        assert template is not None  # checked above
        version = template.versions.order_by("-number").first()
        if version is None:
            raise CampaignTransitionError("The template has no saved version yet.")
        campaign.template_version = version
        Campaign.objects.filter(pk=campaign.pk).update(template_version=version)
    if campaign.track_links and not Link.objects.filter(campaign=campaign).exists():
        assert campaign.template_version is not None  # pinned above
        compiled = compile_version(campaign.template_version, track_links=True)
        Link.objects.bulk_create(
            [Link(campaign=campaign, index=i, url=url) for i, url in enumerate(compiled.links)]
        )


def campaign_start(*, campaign: Campaign, now: datetime | None = None) -> Campaign:
    """Scheduled (or draft, for "send now") -> running: pin content, snapshot the audience,
    then let the senders loose once the transaction has committed."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status not in (S.DRAFT, S.SCHEDULED):
            raise CampaignTransitionError(
                f"A {campaign.get_status_display().lower()} campaign cannot be started."
            )
        if not campaign.from_email:
            raise CampaignTransitionError("Set the From address before sending.")
        # Before the snapshot: a held campaign must not copy its audience on every retry.
        campaign_hold_check(campaign=campaign)
        campaign_pin_content(campaign=campaign)
        total = _snapshot(campaign)
        _hold_until_local_hour(campaign)
        now = now or timezone.now()
        Campaign.objects.filter(pk=campaign.pk).update(
            total=total, started_at=now, next_run_at=None, consecutive_failures=0
        )
        campaign.total, campaign.started_at, campaign.next_run_at = total, now, None
        campaign_transition(campaign=campaign, to=S.RUNNING)
        campaign_kick_on_commit(campaign.pk)
    return campaign


def campaign_pause(*, campaign: Campaign, reason: str = "Paused by a user.") -> Campaign:
    return campaign_transition(campaign=campaign, to=S.PAUSED, reason=reason)


def campaign_resume(*, campaign: Campaign) -> Campaign:
    Campaign.objects.filter(pk=campaign.pk).update(consecutive_failures=0)
    campaign_transition(campaign=campaign, to=S.RUNNING)
    campaign_kick_on_commit(campaign.pk)
    return campaign


def campaign_cancel(*, campaign: Campaign) -> Campaign:
    """Cancelled: pending rows stay pending (visible as never sent); workers stop claiming."""
    return campaign_transition(campaign=campaign, to=S.CANCELLED, reason="Cancelled by a user.")


_COPIED = [
    "template",
    "subject",
    "preheader",
    "segment",
    *SENDER_AND_TRACKING_FIELDS,
    "schedule_kind",
    "schedule_timezone",
    "send_date",
    "send_time",
    "recurring_weekday",
    "recurring_hour",
    "only_new_since_last",
    "local_send_hour",
    "max_consecutive_failures",
    "parallelism",
]


def campaign_duplicate(
    *, campaign: Campaign, user: User | None = None, name: str | None = None
) -> Campaign:
    copy = Campaign(name=name or f"{campaign.name} (copy)", created_by=user)
    for field in _COPIED:
        setattr(copy, field, getattr(campaign, field))
    copy.save()
    copy.topics.set(campaign.topics.all())
    return copy


def campaign_occurrence_create(*, parent: Campaign, now: datetime | None = None) -> Campaign:
    """One occurrence of a recurring campaign: a child campaign sent at once."""
    now = now or timezone.now()
    child = campaign_duplicate(
        campaign=parent, name=f"{parent.name} — {now.astimezone(_tz(parent)):%Y-%m-%d %H:%M}"
    )
    child.parent = parent
    child.schedule_kind = Campaign.ScheduleKind.NOW
    if parent.only_new_since_last and parent.last_occurrence_at:
        child.audience_since = parent.last_occurrence_at
    child.save(update_fields=["parent", "schedule_kind", "audience_since"])
    return child


def _tz(campaign: Campaign) -> ZoneInfo:
    return ZoneInfo(campaign.schedule_timezone)


def delivery_resolve_unknown(
    *, campaign: Campaign, resend: bool, ids: list[int] | None = None, user: User | None = None
) -> int:
    """Decide about deliveries whose handoff was interrupted, all of them or the rows in
    ``ids``: resend them (back to pending) or accept them as sent. Nobody decides this
    silently: the decision, who made it and when stay on the row."""
    rows = Delivery.objects.filter(campaign=campaign, status=Delivery.Status.UNKNOWN)
    if ids is not None:
        rows = rows.filter(id__in=ids)
    now = timezone.now()
    who = user.get_username() if user is not None else "someone"
    if resend:
        count = rows.update(
            status=Delivery.Status.PENDING,
            claim_token="",
            not_before=None,
            resolution=Delivery.Resolution.RESENT,
            resolved_at=now,
            resolved_by=user,
            error=f"Sent again after an interrupted handoff (decided by {who}).",
        )
        campaign_kick_on_commit(campaign.pk)
    else:
        count = rows.update(
            status=Delivery.Status.SENT,
            sent_at=now,
            resolution=Delivery.Resolution.ACCEPTED,
            resolved_at=now,
            resolved_by=user,
            error=f"Accepted as sent after an interrupted handoff (decided by {who}).",
        )
    return count


def deliveries_settle_unknown(*, now: datetime | None = None) -> int:
    """The campaigns' optional policy: unknown rows left undecided for their campaign's
    ``unknown_settle_hours`` are counted as sent (or sent again), and the row says so."""

    now = now or timezone.now()
    due = (
        Delivery.objects.filter(
            status=Delivery.Status.UNKNOWN, campaign__unknown_settle_hours__isnull=False
        )
        .annotate(
            deadline=ExpressionWrapper(
                F("claimed_at") + F("campaign__unknown_settle_hours") * timedelta(hours=1),
                output_field=DateTimeField(),
            )
        )
        .filter(deadline__lte=now)
    )
    accepted = Delivery.objects.filter(
        pk__in=due.filter(campaign__unknown_settle_action="accept").values("pk")
    ).update(
        status=Delivery.Status.SENT,
        sent_at=now,
        resolution=Delivery.Resolution.ACCEPTED_BY_POLICY,
        resolved_at=now,
        error="Counted as sent by the campaign's policy: nobody decided within the set time.",
    )
    resend_ids = list(
        due.filter(campaign__unknown_settle_action="resend").values_list("pk", "campaign_id")
    )
    resent = Delivery.objects.filter(pk__in=[pk for pk, _ in resend_ids]).update(
        status=Delivery.Status.PENDING,
        claim_token="",
        not_before=None,
        resolution=Delivery.Resolution.RESENT_BY_POLICY,
        resolved_at=now,
        error="Sent again by the campaign's policy: nobody decided within the set time.",
    )
    for campaign_id in {cid for _, cid in resend_ids}:
        campaign_kick_on_commit(campaign_id)
    return accepted + resent
