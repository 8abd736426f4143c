"""The periodic dispatcher: one django-celery-beat task, every few seconds.

Due campaigns are taken with ``SELECT ... FOR UPDATE SKIP LOCKED`` and moved out of
'scheduled' in the same transaction, so two dispatchers (a beat restart, two beats by mistake)
can never start one campaign twice — the failure mode of one-off clocked tasks
(django-celery-beat #828).
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from analytics.guardrail import ReputationHold, campaign_hold_check

from .models import Campaign, SendLease
from .pipeline import campaign_maybe_finish, reconcile
from .scheduling import next_weekly_occurrence
from .send_tasks import campaign_kick_on_commit
from .services import campaign_occurrence_create, campaign_start, deliveries_settle_unknown

log = logging.getLogger(__name__)


def _take_one_due(now, *, skip=()):
    """Lock one due scheduled campaign (or None); the caller's transaction holds the lock."""
    return (
        Campaign.objects.select_for_update(skip_locked=True)
        .filter(status=Campaign.Status.SCHEDULED, next_run_at__lte=now)
        .exclude(pk__in=skip)
        .order_by("next_run_at")
        .first()
    )


def _hold(campaign: Campaign, exc: ReputationHold) -> None:
    """Not a failure: it stays scheduled (and due), its page says why, and a later tick
    starts it once an admin has acknowledged the alert."""
    reason = str(exc)[:500]
    Campaign.objects.filter(pk=campaign.pk).exclude(status_reason=reason).update(
        status_reason=reason
    )
    log.info("campaign %s held by a reputation alert", campaign.pk)


def dispatch_due(*, now=None) -> dict:
    now = now or timezone.now()
    started: list[int] = []
    occurrences: list[int] = []
    errors: list[int] = []
    held: list[int] = []
    for _ in range(100):
        with transaction.atomic():
            # Held ones stay due: skipped for the rest of this tick, tried again on the next.
            campaign = _take_one_due(now, skip=held)
            if campaign is None:
                break
            try:
                with transaction.atomic():
                    if campaign.schedule_kind == Campaign.ScheduleKind.RECURRING:
                        # Its occurrence would be held like it: check before creating one.
                        campaign_hold_check(campaign=campaign)
                        child = campaign_occurrence_create(parent=campaign, now=now)
                        campaign_start(campaign=child, now=now)
                        occurrences.append(child.pk)
                        # The next one, on the local calendar (DST-safe).
                        Campaign.objects.filter(pk=campaign.pk).update(
                            last_occurrence_at=now,
                            next_run_at=next_weekly_occurrence(
                                weekday=campaign.recurring_weekday,
                                hour=campaign.recurring_hour,
                                tz_name=campaign.schedule_timezone,
                                after=max(now, campaign.next_run_at),
                            ),
                        )
                    else:
                        campaign_start(campaign=campaign, now=now)
                        started.append(campaign.pk)
            except ReputationHold as exc:
                _hold(campaign, exc)
                held.append(campaign.pk)
            except Exception as exc:  # one campaign that cannot start must not stop the tick
                log.exception("could not start campaign %s", campaign.pk)
                Campaign.objects.filter(pk=campaign.pk).update(
                    status=Campaign.Status.DRAFT,
                    next_run_at=None,
                    status_reason=f"Could not start: {exc}",
                )
                errors.append(campaign.pk)
    settled = deliveries_settle_unknown(now=now)
    running = list(
        Campaign.objects.filter(status=Campaign.Status.RUNNING).values_list("pk", flat=True)
    )
    # Leases of senders long gone whose rows were all settled.
    SendLease.objects.filter(expires_at__lt=now - timedelta(hours=1)).delete()
    for campaign_id in running:
        reconcile(campaign_id=campaign_id)
        if not campaign_maybe_finish(campaign_id=campaign_id):
            campaign_kick_on_commit(campaign_id)
    return {
        "started": started,
        "occurrences": occurrences,
        "errors": errors,
        "held": held,
        "running": running,
        "settled": settled,
    }
