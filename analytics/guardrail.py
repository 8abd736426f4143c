"""The hold an open critical reputation alert puts on its campaigns, and the admin's
acknowledgement that lifts it.

While a critical alert is open for a campaign's sending domain (or for the campaign itself),
every move that would send — scheduling, Send now, the dispatcher starting it, resuming it —
is refused, until an admin acknowledges the alert with a note. Acknowledging does not resolve
the alert (it stays open, its rate kept current); it covers it:

- the acknowledgement holds while the rate stays within REPUTATION_ACK_TOLERANCE_PERCENT
  (relative) of the rate acknowledged, however many evaluations find it still critical — a
  still-critical re-evaluation must not pause what an admin just let run;
- it lapses, and the domain's running campaigns are paused again, when an evaluation finds the
  rate critical and either past that tolerance or REPUTATION_WINDOW_DAYS after the
  acknowledgement (by then none of the mail it was given on is still in the window, so a rate
  still critical is news, not the same fact);
- a new critical alert (another metric, or after this one was resolved) is a new row, with no
  acknowledgement: it holds the campaigns again.

Without an acknowledgement, every evaluation of an open critical alert pauses whatever of its
campaigns runs (before this, a campaign resumed under a critical alert ran on unchecked).
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Prefetch, Q
from django.utils import timezone

from campaigns.models import Campaign, CampaignTransitionError

from .models import AlertAcknowledgement, ReputationAlert

A = ReputationAlert


class ReputationHold(CampaignTransitionError):
    """Refused: an unacknowledged critical alert holds the campaign."""

    def __init__(self, alerts: list[ReputationAlert], domain: str):
        self.alerts = alerts
        super().__init__(
            f"Sending from {domain} is held by a critical reputation alert: "
            + " ".join(alert.message for alert in alerts)
            + " An admin must acknowledge the alert, with a note, on the campaign page before "
            "this campaign can be scheduled, started or resumed."
        )


def sending_domain_of(campaign: Campaign) -> str:
    """The domain the reputation rates of this campaign count against: its connection's
    sending domain, else its From's (as analytics.ingest and running_campaigns_of_domain)."""
    connection = campaign.connection if campaign.connection_id else None
    domain = (connection.sending_domain if connection else "").strip()
    if not domain:
        domain = (campaign.from_email or settings.DEFAULT_FROM_EMAIL).rpartition("@")[2]
    return domain.strip("> ").lower()


def _alerts_of(campaign: Campaign, domain: str):
    return A.objects.filter(resolved_at__isnull=True).filter(
        Q(scope=A.Scope.DOMAIN, key__iexact=domain)
        | Q(scope=A.Scope.CAMPAIGN, key=str(campaign.pk))
    )


def _in_force():
    return AlertAcknowledgement.objects.filter(alert=OuterRef("pk"), lapsed_at__isnull=True)


def campaign_alerts(campaign: Campaign, *, critical_only: bool = False) -> list[ReputationAlert]:
    """Open alerts of the campaign's sending domain and of the campaign itself, critical
    first, each with ``acknowledgement``: the one in force, or None (two queries)."""
    alerts = _alerts_of(campaign, sending_domain_of(campaign))
    if critical_only:
        alerts = alerts.filter(level=A.Level.CRITICAL)
    alerts = list(
        alerts.order_by("level", "-created_at").prefetch_related(
            Prefetch(
                "acknowledgements",
                queryset=AlertAcknowledgement.objects.filter(lapsed_at__isnull=True).select_related(
                    "acknowledged_by"
                ),
                to_attr="in_force",
            )
        )
    )
    for alert in alerts:
        alert.acknowledgement = alert.in_force[0] if alert.in_force else None
    return alerts


def holding_alerts(campaign: Campaign) -> list[ReputationAlert]:
    """The open critical alerts no acknowledgement covers: what holds this campaign."""
    domain = sending_domain_of(campaign)
    return list(
        _alerts_of(campaign, domain)
        .filter(level=A.Level.CRITICAL)
        .filter(~Exists(_in_force()))
        .order_by("created_at")
    )


def campaign_hold_check(*, campaign: Campaign) -> None:
    """Raise ReputationHold when an unacknowledged critical alert holds the campaign."""
    alerts = holding_alerts(campaign)
    if alerts:
        raise ReputationHold(alerts, sending_domain_of(campaign))


def alert_acknowledge(
    *, alert: ReputationAlert, user, note: str, campaign: Campaign | None = None, now=None
) -> AlertAcknowledgement | None:
    """Record an admin's acknowledgement of an open critical alert (who, when, the note, the
    rate it was given at). None when the alert is no longer open and critical; the one in
    force when it is already acknowledged."""
    now = now or timezone.now()
    with transaction.atomic():
        # Locked: two admins acknowledging at once, or an evaluation lapsing it meanwhile.
        locked = A.objects.select_for_update().filter(pk=alert.pk).first()
        if locked is None or locked.resolved_at or locked.level != A.Level.CRITICAL:
            return None
        alert = locked
        current = alert.acknowledgements.filter(lapsed_at__isnull=True).first()
        if current:
            return current
        return AlertAcknowledgement.objects.create(
            alert=alert,
            acknowledged_by=user,
            acknowledged_at=now,
            note=note[:500],
            rate=alert.rate,
            campaign=campaign,
        )


def acknowledgement_covers(
    *, alert: ReputationAlert, level: str, rate: float, now=None
) -> tuple[bool, str]:
    """An open critical alert evaluated again at ``level`` and ``rate``: (True, "") when an
    acknowledgement in force still covers it; else (False, why) — the acknowledgement, if
    there was one, is lapsed here, and ``why`` says so ("" when there was none)."""
    ack = AlertAcknowledgement.objects.filter(alert=alert, lapsed_at__isnull=True).first()
    if ack is None:
        return False, ""
    if level != A.Level.CRITICAL:
        return True, ""  # back under the critical line: nothing to lapse
    now = now or timezone.now()
    label = A.Metric(alert.metric).label
    tolerance = settings.REPUTATION_ACK_TOLERANCE_PERCENT / 100
    window = settings.REPUTATION_WINDOW_DAYS
    if rate > ack.rate * (1 + tolerance):
        why = (
            f"{label} of {alert.key} rose to {rate:.2%}, past the {ack.rate:.2%} acknowledged "
            f"on {ack.acknowledged_at:%Y-%m-%d %H:%M} UTC"
        )
    elif now - ack.acknowledged_at >= timedelta(days=window):
        why = (
            f"{label} of {alert.key} is still critical ({rate:.2%}) {window} days after it was "
            "acknowledged"
        )
    else:
        return True, ""
    # Conditional: another evaluation lapsing it at the same moment keeps the first reason.
    AlertAcknowledgement.objects.filter(pk=ack.pk, lapsed_at__isnull=True).update(
        lapsed_at=now, lapsed_reason=why[:500]
    )
    return False, why
