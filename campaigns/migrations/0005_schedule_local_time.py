"""Campaign.send_at_local (a DateTimeField fed naive wall-clock times) becomes a local date and
a local time, read in schedule_timezone.

With USE_TZ, Django stored each naive value as if it were in the default time zone
(settings.TIME_ZONE), and an aware value from the form was in that same zone (no view
activates another): reading the stored instant back in the default zone gives exactly the
wall-clock time that was meant.
"""

from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import migrations, models


def _split(apps, schema_editor):
    Campaign = apps.get_model("campaigns", "Campaign")
    zone = ZoneInfo(settings.TIME_ZONE)
    rows = []
    for campaign in Campaign.objects.exclude(send_at_local=None).only("pk", "send_at_local"):
        local = campaign.send_at_local.astimezone(zone)
        campaign.send_date, campaign.send_time = local.date(), local.time()
        rows.append(campaign)
    Campaign.objects.bulk_update(rows, ["send_date", "send_time"], batch_size=1000)


def _join(apps, schema_editor):
    from datetime import datetime

    Campaign = apps.get_model("campaigns", "Campaign")
    zone = ZoneInfo(settings.TIME_ZONE)
    rows = []
    for campaign in Campaign.objects.exclude(send_date=None).exclude(send_time=None):
        campaign.send_at_local = datetime.combine(campaign.send_date, campaign.send_time).replace(
            tzinfo=zone
        )
        rows.append(campaign)
    Campaign.objects.bulk_update(rows, ["send_at_local"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0004_local_send_hour")]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="send_date",
            field=models.DateField(
                blank=True, help_text="Once: the local date, in schedule_timezone.", null=True
            ),
        ),
        migrations.AddField(
            model_name="campaign",
            name="send_time",
            field=models.TimeField(
                blank=True,
                help_text="Once: the local wall-clock time, in schedule_timezone.",
                null=True,
            ),
        ),
        migrations.RunPython(_split, _join),
        migrations.RemoveField(model_name="campaign", name="send_at_local"),
    ]
