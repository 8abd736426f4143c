"""The one function that moves a campaign between states, and the moves it allows.

Its own module so that services, the pipeline and the dispatcher all use it without
importing each other."""

from django.utils import timezone

from analytics.guardrail import campaign_hold_check
from webhooks import emit as webhooks_emit

from .models import Campaign, CampaignTransitionError

S = Campaign.Status

# Every legal move; anything else is refused with a message naming both states.
TRANSITIONS: dict[str, set[str]] = {
    S.DRAFT: {S.SCHEDULED, S.RUNNING, S.CANCELLED},
    S.SCHEDULED: {S.DRAFT, S.RUNNING, S.CANCELLED},
    S.RUNNING: {S.PAUSED, S.FINISHED, S.CANCELLED},
    S.PAUSED: {S.RUNNING, S.CANCELLED},
    S.FINISHED: set(),
    S.CANCELLED: set(),
}
# The moves outgoing webhooks tell (a resume is no new start).
_WEBHOOK_EVENTS = {S.PAUSED: "campaign.paused", S.FINISHED: "campaign.finished"}


def campaign_transition(*, campaign: Campaign, to: str, reason: str = "") -> Campaign:
    """Move a campaign to ``to`` if that move is legal from the state it is in *in the
    database* (a conditional UPDATE, so two processes can never both make a move)."""
    to = S(to)
    current = S(campaign.status)
    if to not in TRANSITIONS[current]:
        raise CampaignTransitionError(
            f"A {current.label.lower()} campaign cannot become {to.label.lower()}"
            + (
                f" (it can become: {', '.join(sorted(TRANSITIONS[current]))})."
                if TRANSITIONS[current]
                else " (it is final)."
            )
        )
    if to in (S.SCHEDULED, S.RUNNING):
        # Every way to send (schedule, Send now, the dispatcher, resume) comes through here:
        # an unacknowledged critical reputation alert of its domain refuses them all.
        campaign_hold_check(campaign=campaign)
    now = timezone.now()
    fields = {"status": to, "status_reason": reason, "updated_at": now}
    if to == S.FINISHED:
        fields["finished_at"] = now
    updated = Campaign.objects.filter(pk=campaign.pk, status=current).update(**fields)
    if not updated:
        fresh = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
        raise CampaignTransitionError(
            f"The campaign changed meanwhile: it is {fresh}, not {current}; "
            f"cannot become {to.label.lower()}."
        )
    for key, value in fields.items():
        setattr(campaign, key, value)
    if to == S.RUNNING and current != S.PAUSED:
        webhooks_emit.campaign_changed("campaign.started", campaign.pk)
    elif to in _WEBHOOK_EVENTS:
        webhooks_emit.campaign_changed(_WEBHOOK_EVENTS[to], campaign.pk)
    return campaign
