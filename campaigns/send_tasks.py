"""The senders' tasks and the one way to enqueue a kick.

Their own module (registered under their historical ``campaigns.tasks.*`` names) because
services and the dispatcher start senders: this module imports the pipeline and nothing that
imports services, so ``tasks.py`` (the dispatcher's task, which does) can sit above both."""

import logging

from celery import shared_task
from django.core.cache import cache
from django.db import transaction

from .models import Campaign
from .pipeline import campaign_send_work, claim_ttl, senders_alive

log = logging.getLogger(__name__)


@shared_task(name="campaigns.tasks.campaign_send")
def campaign_send(campaign_id: int) -> str:
    outcome = campaign_send_work(campaign_id=campaign_id)
    if outcome == "budget":
        campaign_send.delay(campaign_id)  # keep the same number of senders going
    return outcome


@shared_task(name="campaigns.tasks.campaign_kick")
def campaign_kick(campaign_id: int) -> None:
    """Start the campaign's senders unless live ones are already at work."""
    campaign = Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.RUNNING).first()
    if campaign is None or senders_alive(campaign_id):
        log.info("campaign %s: not running or senders alive, no kick", campaign_id)
        return
    # One kick per short window: tasks still queued have not had the chance to beat yet.
    if not cache.add(f"nfm:kick:{campaign_id}", 1, timeout=claim_ttl()):
        log.info("campaign %s: kicked moments ago", campaign_id)
        return
    for _ in range(max(1, campaign.parallelism)):
        campaign_send.delay(campaign_id)


def campaign_kick_on_commit(campaign_id: int) -> None:
    """Kick the campaign's senders once the current transaction has committed."""
    transaction.on_commit(lambda: campaign_kick.delay(campaign_id))
