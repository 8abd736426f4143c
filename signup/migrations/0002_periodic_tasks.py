"""The signup app's periodic tasks, as django-celery-beat rows (so `make run`'s migrate creates
them and beat's DatabaseScheduler runs them): reminders hourly, purge daily at 03:30."""

from django.db import migrations

TASKS = [
    ("signup: confirmation reminders", "signup.tasks.signup_send_reminders", {"minute": "7"}),
    (
        "signup: purge unconfirmed subscribers",
        "signup.tasks.signup_purge_unconfirmed",
        {"minute": "30", "hour": "3"},
    ),
]


def create(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    for name, task, cron in TASKS:
        fields = {
            "minute": "*",
            "hour": "*",
            "day_of_week": "*",
            "day_of_month": "*",
            "month_of_year": "*",
            **cron,
        }
        schedule = CrontabSchedule.objects.filter(**fields).first()
        if schedule is None:
            schedule = CrontabSchedule.objects.create(**fields)
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "crontab": schedule, "enabled": True}
        )
    # Tell a running beat that the schedule changed.
    from django.utils import timezone

    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _, _ in TASKS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("signup", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
