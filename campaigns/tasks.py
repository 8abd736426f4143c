"""Thin Celery tasks: they take ids and call the pipeline or the dispatcher."""

import logging

from celery import shared_task
from django.core.cache import cache

from .dispatch import dispatch_due
from .models import Campaign
from .pipeline import campaign_send_work, claim_ttl, senders_alive

log = logging.getLogger(__name__)


@shared_task
def campaign_send(campaign_id: int) -> str:
    outcome = campaign_send_work(campaign_id=campaign_id)
    if outcome == "budget":
        campaign_send.delay(campaign_id)  # keep the same number of senders going
    return outcome


@shared_task
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


@shared_task
def campaigns_dispatch() -> dict:
    """The one periodic task (django-celery-beat): starts due campaigns, creates recurring
    occurrences, reconciles dead claims and keeps running campaigns moving."""
    return dispatch_due()
