import hashlib

from django.db import models
from django.db.models.functions import Lower


def email_hash(email: str) -> str:
    """SHA-256 of the normalized address: what a suppression keeps after erasure."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


class Topic(models.Model):
    """A list subscribers choose to receive (shown to them under its public name)."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    public_name = models.CharField(max_length=150, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def display_name(self) -> str:
        return self.public_name or self.name


class Subscriber(models.Model):
    class Status(models.TextChoices):
        UNCONFIRMED = "unconfirmed", "Unconfirmed"
        ACTIVE = "active", "Active"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"

    class Source(models.TextChoices):
        FORM = "form", "Signup form"
        IMPORT = "import", "Import"
        API = "api", "API"
        MANUAL = "manual", "Manual"

    # Stored normalized (email-validator); unique regardless of case.
    email = models.CharField(max_length=254)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNCONFIRMED)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.MANUAL)
    language = models.CharField(max_length=8, default="en")
    timezone = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # Preference center: "pause all email until" and "send me less" (campaigns per month).
    paused_until = models.DateTimeField(null=True, blank=True)
    max_campaigns_per_month = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="subscriber_email_ci_unique"),
        ]
        indexes = [models.Index(fields=["status", "id"], name="subscriber_status_id")]

    def __str__(self):
        return self.email

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class Subscription(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Subscribed"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"

    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="subscriptions"
    )
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscriber", "topic"], name="subscription_unique"),
        ]
        indexes = [
            models.Index(fields=["topic", "status", "subscriber"], name="subscription_topic")
        ]

    def __str__(self):
        return f"{self.subscriber_id} in {self.topic_id} ({self.status})"


class Suppression(models.Model):
    """An address that must never be mailed. Checked before every send.

    The hash survives erasure: after the address itself is wiped, a new import or send of the
    same address still matches.
    """

    class Reason(models.TextChoices):
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        HARD_BOUNCE = "hard_bounce", "Hard bounce"
        COMPLAINT = "complaint", "Complaint"
        MANUAL = "manual", "Manual"
        ERASED = "erased", "Erased (GDPR)"

    email_hash = models.CharField(max_length=64, unique=True)
    email = models.CharField(max_length=254, blank=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.email or self.email_hash[:12]} ({self.get_reason_display()})"


class Segment(models.Model):
    """A saved audience rule, evaluated fresh every time (see subscribers/segments.py)."""

    name = models.CharField(max_length=150)
    description = models.TextField(blank=True)
    rules = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name
