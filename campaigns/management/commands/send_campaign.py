import time

from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import pluralize

from campaigns.models import Campaign, CampaignTransitionError
from campaigns.selectors import campaign_progress
from campaigns.services import campaign_start


class Command(BaseCommand):
    help = "Start a campaign now (snapshot its audience, start the senders); --wait follows it."

    def add_arguments(self, parser):
        parser.add_argument("campaign_id", type=int)
        parser.add_argument("--wait", action="store_true", help="Print progress until it ends.")
        parser.add_argument("--interval", type=float, default=2.0)

    def handle(self, *args, campaign_id, wait, interval, **options):
        campaign = Campaign.objects.filter(pk=campaign_id).first()
        if campaign is None:
            raise CommandError(f"No campaign with id {campaign_id}.")
        if campaign.status in (Campaign.Status.DRAFT, Campaign.Status.SCHEDULED):
            try:
                campaign_start(campaign=campaign)
            except CampaignTransitionError as exc:
                raise CommandError(str(exc)) from exc
            campaign.refresh_from_db()
            self.stdout.write(
                f"Started “{campaign.name}”: {campaign.total} recipient{pluralize(campaign.total)}."
            )
        elif campaign.status != Campaign.Status.RUNNING or not wait:
            raise CommandError(
                f"The campaign is {campaign.get_status_display().lower()}: it cannot be started."
            )
        if not wait:
            return
        while True:
            campaign.refresh_from_db()
            progress = campaign_progress(campaign)
            rate = f"{progress['rate']:.1f} msg/s" if progress["rate"] else "—"
            self.stdout.write(
                f"{campaign.status}: {progress['sent']}/{progress['total']} sent "
                f"({progress['percent']}%), {rate}"
                + (f", finish ≈ {progress['eta']:%Y-%m-%d %H:%M} UTC" if progress["eta"] else "")
                + (f" — {campaign.status_reason}" if campaign.status_reason else "")
            )
            if campaign.status not in (Campaign.Status.RUNNING, Campaign.Status.SCHEDULED):
                break
            time.sleep(interval)
        if campaign.status != Campaign.Status.FINISHED:
            raise CommandError(f"The campaign ended {campaign.status}: {campaign.status_reason}")
