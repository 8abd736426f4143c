from django.db import migrations

REASONS = [
    ("too_many", "I get too many emails", "Je reçois trop d'e-mails", False),
    ("not_relevant", "The content is not relevant to me", "Le contenu ne me concerne pas", False),
    ("never_signed_up", "I never signed up", "Je ne me suis jamais inscrit(e)", False),
    ("content_quality", "The content is not good enough", "Le contenu n'est pas assez bon", False),
    ("other", "Other", "Autre", True),
]


def add_reasons(apps, schema_editor):
    Reason = apps.get_model("preferences", "ExitSurveyReason")
    for position, (key, en, fr, wants_text) in enumerate(REASONS, start=1):
        Reason.objects.get_or_create(
            key=key,
            defaults={
                "label_en": en,
                "label_fr": fr,
                "wants_text": wants_text,
                "position": position,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("preferences", "0001_initial")]
    operations = [migrations.RunPython(add_reasons, migrations.RunPython.noop)]
