from django.db import models


class ExitSurveyReason(models.Model):
    """A reason offered on the exit survey; the marketer edits the list and its wording."""

    key = models.SlugField(max_length=40, unique=True)
    label_en = models.CharField(max_length=200)
    label_fr = models.CharField(max_length=200)
    wants_text = models.BooleanField(
        default=False, help_text="Shows a free-text box when ticked (e.g. 'Other')."
    )
    position = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self):
        return self.label_en

    def label(self, language: str) -> str:
        return self.label_fr if language == "fr" and self.label_fr else self.label_en


class ExitSurveyResponse(models.Model):
    """One answer to the exit survey. Kept after the subscriber is erased (aggregates only)."""

    subscriber = models.ForeignKey(
        "subscribers.Subscriber",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="exit_survey_responses",
    )
    # The campaign whose unsubscribe link was used, when the link came from a campaign.
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="exit_survey_responses",
    )
    reasons = models.JSONField(default=list)
    other_text = models.TextField(blank=True, max_length=2000)
    language = models.CharField(max_length=8, default="en")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One answer per unsubscribe link: re-posting the form updates, never duplicates.
            models.UniqueConstraint(
                fields=["subscriber", "campaign"],
                name="exit_survey_one_per_link",
                nulls_distinct=False,
            )
        ]

    def __str__(self):
        return f"exit survey {self.pk}: {', '.join(self.reasons) or 'no reason'}"


class PreferenceCenterSettings(models.Model):
    """Singleton of the marketer's choices for the recipient pages (edited by admins)."""

    send_goodbye_email = models.BooleanField(
        default=False,
        help_text="Send one short confirmation after someone unsubscribes. Off by default: "
        "after leaving, nothing more is sent.",
    )
    editable_fields = models.ManyToManyField(
        "subscribers.CustomField",
        blank=True,
        help_text="Custom attributes subscribers may edit on their preference page.",
    )

    def __str__(self):
        return "Preference center settings"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> "PreferenceCenterSettings":
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj
