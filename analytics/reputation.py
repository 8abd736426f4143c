"""Reputation guardrails: rolling bounce and complaint rates, alerts, and the auto-pause.

Rates per sending domain over the last REPUTATION_WINDOW_DAYS (from the DomainDaily rollup)
and per campaign (from CampaignStats), all against delivered + hard-bounced + refused for the
sender's fault. Three rates: complaints, hard bounces (dead addresses: the list's hygiene),
and sender-caused rejections (authentication, policy, reputation blocks: the connection's and
the domain's fault, which suppressing subscribers would not fix). Crossing a warning
line raises a visible alert; crossing a critical line also pauses every running campaign that
sends from that domain (or that campaign), through the campaigns' transition function.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from campaigns.models import Campaign, CampaignTransitionError
from campaigns.transitions import campaign_transition
from webhooks import emit as webhooks_emit

from .guardrail import acknowledgement_covers
from .models import CampaignStats, DomainDaily, ReputationAlert

log = logging.getLogger(__name__)
A = ReputationAlert


def thresholds() -> dict[str, tuple[float, float]]:
    """(warning, critical) as fractions."""
    return {
        A.Metric.COMPLAINTS: (
            settings.REPUTATION_COMPLAINT_WARN_BP / 10_000,
            settings.REPUTATION_COMPLAINT_CRITICAL_BP / 10_000,
        ),
        A.Metric.HARD_BOUNCES: (
            settings.REPUTATION_BOUNCE_WARN_BP / 10_000,
            settings.REPUTATION_BOUNCE_CRITICAL_BP / 10_000,
        ),
        A.Metric.SENDER_BOUNCES: (
            settings.REPUTATION_SENDER_BOUNCE_WARN_BP / 10_000,
            settings.REPUTATION_SENDER_BOUNCE_CRITICAL_BP / 10_000,
        ),
    }


METRICS = (A.Metric.COMPLAINTS, A.Metric.HARD_BOUNCES, A.Metric.SENDER_BOUNCES)
LABELS = {
    A.Metric.COMPLAINTS: "Complaint rate",
    A.Metric.HARD_BOUNCES: "Hard bounce rate",
    A.Metric.SENDER_BOUNCES: "Sender-caused rejection rate (authentication, policy, reputation)",
}


def level_of(metric: str, rate: float) -> str | None:
    warn, critical = thresholds()[metric]
    if rate >= critical:
        return A.Level.CRITICAL
    if rate >= warn:
        return A.Level.WARNING
    return None


def domain_rates(domain: str, *, today=None) -> dict:
    today = today or timezone.now().date()
    since = today - timedelta(days=settings.REPUTATION_WINDOW_DAYS - 1)
    totals = DomainDaily.objects.filter(domain=domain, day__gte=since).aggregate(
        delivered=Sum("delivered"),
        hard=Sum("bounced_hard"),
        sender=Sum("bounced_sender"),
        complained=Sum("complained"),
    )
    return _rates(
        delivered=totals["delivered"] or 0,
        hard=totals["hard"] or 0,
        sender=totals["sender"] or 0,
        complained=totals["complained"] or 0,
    )


def campaign_rates(stats: CampaignStats) -> dict:
    return _rates(
        delivered=stats.delivered,
        hard=stats.bounced_hard,
        sender=stats.bounced_sender,
        complained=stats.complained,
    )


def _rates(*, delivered: int, hard: int, sender: int, complained: int) -> dict:
    # Refusals of the sender are part of the volume: a domain Gmail refuses outright has
    # nothing delivered, and must still reach a verdict.
    volume = delivered + hard + sender
    return {
        "volume": volume,
        A.Metric.COMPLAINTS: complained / volume if volume else 0.0,
        A.Metric.HARD_BOUNCES: hard / volume if volume else 0.0,
        A.Metric.SENDER_BOUNCES: sender / volume if volume else 0.0,
    }


def running_campaigns_of_domain(domain: str) -> list[Campaign]:
    """Running campaigns that send from the domain (connection's domain, else From's)."""
    return list(
        Campaign.objects.filter(status=Campaign.Status.RUNNING).filter(
            Q(connection__sending_domain__iexact=domain)
            | (
                (Q(connection__isnull=True) | Q(connection__sending_domain=""))
                & Q(from_email__iendswith="@" + domain)
            )
        )
    )


def _pause(campaigns: list[Campaign], reason: str) -> list[int]:
    paused = []
    for campaign in campaigns:
        try:
            campaign_transition(campaign=campaign, to=Campaign.Status.PAUSED, reason=reason[:500])
            paused.append(campaign.pk)
        except CampaignTransitionError as exc:
            log.info("not pausing campaign %s: %s", campaign.pk, exc)
    return paused


def _hold_again(alert: ReputationAlert, *, level: str, rate: float, to_pause) -> None:
    """An open critical alert keeps its campaigns paused until an admin acknowledges it
    (analytics.guardrail): evaluated again, it pauses whatever runs without that cover."""
    covered, why = acknowledgement_covers(alert=alert, level=level, rate=rate)
    if covered:
        return
    reason = f"{why}: paused again." if why else f"{alert.message} Not acknowledged: paused again."
    paused = _pause(to_pause(), reason)
    if paused:
        A.objects.filter(pk=alert.pk).update(
            paused_campaigns=sorted(set(alert.paused_campaigns) | set(paused))
        )


def _outcome(*, scope: str, key: str, level: str, paused: list[int]) -> str:
    if level != A.Level.CRITICAL:
        return "."
    if scope == A.Scope.CAMPAIGN:
        if paused:
            return "; it was paused."
        status = Campaign.objects.filter(pk=int(key)).values_list("status", flat=True).first()
        if status == Campaign.Status.PAUSED:  # by its domain's alert, a moment before
            return "; it is paused."
        label = Campaign.Status(status).label.lower() if status else "deleted"
        return f"; it is {label} (nothing to pause)."
    if paused:
        n = len(paused)
        return f"; {n} running campaign{'s were' if n != 1 else ' was'} paused."
    return "; none of its campaigns is running (nothing to pause)."


def _raise(
    *,
    scope: str,
    key: str,
    metric: str,
    level: str,
    rate: float,
    volume: int,
    message: str,
    to_pause,
) -> ReputationAlert | None:
    alert = A.objects.filter(scope=scope, key=key, metric=metric, resolved_at__isnull=True).first()
    if alert and (alert.level == A.Level.CRITICAL or level == A.Level.WARNING):
        A.objects.filter(pk=alert.pk).update(rate=rate, volume=volume)
        if alert.level == A.Level.CRITICAL:
            _hold_again(alert, level=level, rate=rate, to_pause=to_pause)
        return alert
    paused = _pause(to_pause(), message + ".") if level == A.Level.CRITICAL else []
    # Say what was done, not what a critical level would do: a finished campaign was not paused.
    message += _outcome(scope=scope, key=key, level=level, paused=paused)
    try:
        with transaction.atomic():
            if alert:  # warning -> critical
                alert.level, alert.rate, alert.volume, alert.message = level, rate, volume, message
                alert.paused_campaigns = sorted(set(alert.paused_campaigns) | set(paused))
                alert.save()
                webhooks_emit.alert_raised(alert.pk)  # the same alert, now critical
                return alert
            alert = A.objects.create(
                scope=scope,
                key=key,
                metric=metric,
                level=level,
                rate=rate,
                volume=volume,
                message=message,
                paused_campaigns=paused,
            )
            webhooks_emit.alert_raised(alert.pk)
            return alert
    except IntegrityError:  # raised meanwhile by another process
        return None


def reputation_evaluate(*, domains=(), campaign_ids=()) -> list[ReputationAlert]:
    """Check the rates of these domains and campaigns; raise alerts, pause when critical."""
    raised = []
    for domain in {d for d in domains if d}:
        raised += _evaluate(
            domain_rates(domain),
            scope=A.Scope.DOMAIN,
            key=domain,
            describe=lambda metric, rate, level, domain=domain: (
                f"{LABELS[metric]} of {domain} is {rate:.2%} over the last "
                f"{settings.REPUTATION_WINDOW_DAYS} days ({level})"
            ),
            to_pause=lambda domain=domain: running_campaigns_of_domain(domain),
        )
    for stats in CampaignStats.objects.filter(campaign_id__in=set(campaign_ids)).select_related(
        "campaign"
    ):
        campaign = stats.campaign
        raised += _evaluate(
            campaign_rates(stats),
            scope=A.Scope.CAMPAIGN,
            key=str(campaign.pk),
            describe=lambda metric, rate, level, campaign=campaign: (
                f"{LABELS[metric]} of campaign “{campaign.name}” is {rate:.2%} ({level})"
            ),
            to_pause=lambda campaign=campaign: (
                [campaign] if campaign.status == Campaign.Status.RUNNING else []
            ),
        )
    return raised


def _evaluate(rates: dict, *, scope: str, key: str, describe, to_pause) -> list[ReputationAlert]:
    """The alerts one domain's or campaign's rates raise (none under the minimum volume);
    ``describe(metric, rate, level)`` words the message."""
    if rates["volume"] < settings.REPUTATION_MIN_VOLUME:
        return []
    raised = []
    for metric in METRICS:
        level = level_of(metric, rates[metric])
        if level is None:
            continue
        alert = _raise(
            scope=scope,
            key=key,
            metric=metric,
            level=level,
            rate=rates[metric],
            volume=rates["volume"],
            message=describe(metric, rates[metric], level),
            to_pause=to_pause,
        )
        if alert:
            raised.append(alert)
    return raised


def alert_resolve(*, alert: ReputationAlert) -> None:
    A.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(resolved_at=timezone.now())
