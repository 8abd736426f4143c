"""Signup forms, lead magnets and the record of each signup (the capture side).

A form's steps and fields are one JSON document (``SignupForm.steps``) checked by
``signup.schema.steps_clean`` on every save: the builder edits it as a whole and the public
endpoints read it in one row fetch, with no join per field.
"""

import secrets

from django.conf import settings
from django.db import models


def new_public_id() -> str:
    # Public, unguessable enough that forms cannot be enumerated; not a secret.
    return secrets.token_urlsafe(9)


def lead_magnet_path(instance, filename: str) -> str:
    # A random directory: where media is served publicly, the file cannot be guessed and
    # fetched without going through the signed, expiring download link.
    return f"lead-magnets/{secrets.token_urlsafe(12)}/{filename}"


class LeadMagnet(models.Model):
    """A file (or a link to one) delivered after confirmation through an expiring signed link."""

    name = models.CharField(max_length=150)
    file = models.FileField(upload_to=lead_magnet_path, blank=True)
    url = models.URLField(max_length=500, blank=True)
    link_hours = models.PositiveIntegerField(
        default=72, help_text="How long a download link stays valid after it is sent."
    )
    downloads = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def filename(self) -> str:
        return (self.file.name or "").rsplit("/", 1)[-1]


class SignupForm(models.Model):
    class Language(models.TextChoices):
        EN = "en", "English"
        FR = "fr", "Français"

    class SuccessAction(models.TextChoices):
        MESSAGE = "message", "Show a message"
        REDIRECT = "redirect", "Redirect to a page"

    name = models.CharField(max_length=150)
    public_id = models.CharField(max_length=20, unique=True, default=new_public_id)
    is_active = models.BooleanField(default=True)
    language = models.CharField(max_length=8, choices=Language.choices, default=Language.EN)
    steps = models.JSONField(default=list)
    theme = models.JSONField(default=dict, blank=True)
    success_action = models.CharField(
        max_length=16, choices=SuccessAction.choices, default=SuccessAction.MESSAGE
    )
    success_message = models.TextField(blank=True)
    redirect_url = models.URLField(max_length=500, blank=True)
    double_opt_in = models.BooleanField(default=True)
    topics = models.ManyToManyField("subscribers.Topic", blank=True, related_name="signup_forms")
    lead_magnet = models.ForeignKey(
        LeadMagnet, null=True, blank=True, on_delete=models.SET_NULL, related_name="forms"
    )
    consent_text = models.TextField(blank=True)
    consent_version = models.CharField(max_length=50, blank=True, default="1")
    # One origin per line (https://www.example.com), or * for any site. Empty: hosted page only.
    allowed_origins = models.TextField(blank=True)
    # Abuse protection options (see signup/protection.py).
    min_fill_seconds = models.PositiveSmallIntegerField(default=3)
    proof_of_work = models.BooleanField(default=False)
    reject_disposable = models.BooleanField(default=False)
    check_dns = models.BooleanField(default=False)
    # Emails: one template per language of each kind; the built-in text when none matches.
    confirmation_templates = models.ManyToManyField(
        "templates_app.Template", blank=True, related_name="+"
    )
    welcome_templates = models.ManyToManyField(
        "templates_app.Template", blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def origins(self) -> list[str]:
        return [
            line.strip().rstrip("/") for line in self.allowed_origins.splitlines() if line.strip()
        ]

    def origin_allowed(self, origin: str) -> bool:
        if not origin:
            return False
        origin = origin.rstrip("/")
        site = settings.SITE_URL
        return origin == site or "*" in self.origins or origin in self.origins


class Signup(models.Model):
    """One person going through one form: how far they got, where they came from, whether
    they confirmed. Stats are counted from these rows (and FormView for views)."""

    form = models.ForeignKey(SignupForm, on_delete=models.CASCADE, related_name="signups")
    subscriber = models.ForeignKey(
        "subscribers.Subscriber", on_delete=models.CASCADE, related_name="signups"
    )
    steps_completed = models.PositiveSmallIntegerField(default=1)
    # True when this signup created the subscriber (or found one never confirmed): its answers
    # then go straight onto the subscriber. Otherwise an anonymous visitor must not change a
    # confirmed person's profile: answers wait in ``pending`` until the owner confirms.
    applies_directly = models.BooleanField(default=False)
    # What a not-yet-confirmed submission asked for, applied at confirmation when it may not be
    # applied at once (see services.signup_submit_step): names, attributes, topic ids.
    pending = models.JSONField(default=dict, blank=True)
    # The consent shown at submission (the form may change before the person confirms).
    consent_text = models.TextField(blank=True)
    consent_version = models.CharField(max_length=50, blank=True)
    source_page = models.CharField(max_length=500, blank=True)
    utm_source = models.CharField(max_length=100, blank=True)
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=100, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When the confirmation email is owed: at once for a one-step form, else after a grace time
    # (the visitor may still be on step 2, which asks their name). Sent when they finish the
    # last step or, if they leave, by the beat's sweep once due; confirmation_sent_at is then set
    # by one conditional UPDATE, so it goes out exactly once.
    confirmation_due_at = models.DateTimeField(null=True, blank=True)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    downloaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["form", "subscriber"], name="signup_form_subscriber")
        ]
        indexes = [
            models.Index(fields=["form", "created_at"], name="signup_form_created"),
            models.Index(
                fields=["confirmation_sent_at"],
                name="signup_awaiting_confirmation",
                condition=models.Q(confirmed_at__isnull=True),
            ),
            models.Index(
                fields=["confirmation_due_at"],
                name="signup_confirmation_owed",
                condition=models.Q(confirmation_sent_at__isnull=True, confirmed_at__isnull=True),
            ),
        ]

    def __str__(self):
        return f"{self.subscriber_id} via {self.form_id}"


class FormView(models.Model):
    """Views counted per form, day, source page and UTM (one upserted row, not one per view)."""

    form = models.ForeignKey(SignupForm, on_delete=models.CASCADE, related_name="views")
    day = models.DateField()
    source_page = models.CharField(max_length=500, blank=True)
    utm_source = models.CharField(max_length=100, blank=True)
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=100, blank=True)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["form", "day", "source_page", "utm_source", "utm_medium", "utm_campaign"],
                name="formview_unique",
            )
        ]

    def __str__(self):
        return f"{self.form_id} {self.day} {self.source_page or '-'}: {self.count}"
