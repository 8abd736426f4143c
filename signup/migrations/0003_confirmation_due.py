"""The confirmation email of a multi-step form waits for the last step (or a grace time): when
it is owed, its index, and the beat's sweep that sends it to visitors who left early."""

from django.db import migrations, models

SWEEP = "signup: confirmations of abandoned signups"


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    schedule, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.update_or_create(
        name=SWEEP,
        defaults={
            "task": "signup.tasks.signup_send_due_confirmations",
            "interval": schedule,
            "enabled": True,
        },
    )
    from django.utils import timezone

    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SWEEP).delete()


def owed_as_sent(apps, schema_editor):
    # Signups from before this change had their email sent at step 1: owed then.
    Signup = apps.get_model("signup", "Signup")
    Signup.objects.filter(confirmation_sent_at__isnull=False).update(
        confirmation_due_at=models.F("confirmation_sent_at")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("signup", "0002_periodic_tasks"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="signup",
            name="confirmation_due_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="signup",
            index=models.Index(
                condition=models.Q(confirmation_sent_at__isnull=True, confirmed_at__isnull=True),
                fields=["confirmation_due_at"],
                name="signup_confirmation_owed",
            ),
        ),
        migrations.RunPython(owed_as_sent, migrations.RunPython.noop),
        migrations.RunPython(create, remove),
    ]
