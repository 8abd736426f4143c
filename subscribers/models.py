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
    # Set only while subscriber_erase runs its hooks: the address already wiped from the row.
    erasing_address: str

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
    # Which signup form (its slug) or import job brought them in, next to the coarse source.
    source_detail = models.CharField(max_length=100, blank=True)
    # Set by GDPR erasure: the row stays (anonymised) so deliveries and events keep their counts.
    erased_at = models.DateTimeField(null=True, blank=True)

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

    # No separate FK indexes: the unique (subscriber, topic) and the (topic, status, subscriber)
    # indexes lead with these columns already, and every extra index slows imports down.
    # No database FK constraint either: a million-row import would otherwise spend a third of
    # its time at COMMIT re-checking (and row-locking) every parent of every new row. Integrity
    # holds because rows are only created for subscribers/topics that exist in the same
    # statement, and deletions go through the ORM, whose CASCADE removes these rows.
    subscriber = models.ForeignKey(
        Subscriber,
        on_delete=models.CASCADE,
        related_name="subscriptions",
        db_index=False,
        db_constraint=False,
    )
    topic = models.ForeignKey(
        Topic,
        on_delete=models.CASCADE,
        related_name="subscriptions",
        db_index=False,
        db_constraint=False,
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

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
    # What caused it, e.g. "import:12", "bounce:<event id>", "preferences", "dashboard:alice".
    event = models.CharField(max_length=100, blank=True)
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


class CustomField(models.Model):
    """The definition of one custom attribute: values live in Subscriber.attributes[key]."""

    class Type(models.TextChoices):
        TEXT = "text", "Text"
        NUMBER = "number", "Number"
        DATE = "date", "Date"
        BOOLEAN = "boolean", "Yes / no"
        CHOICE = "choice", "Choice"

    key = models.SlugField(max_length=50, unique=True)
    label = models.CharField(max_length=100)
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.TEXT)
    choices = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["label"]

    def __str__(self):
        return self.label


class ConsentRecord(models.Model):
    """Append-only proof of consent: the exact text shown, its version, where and when."""

    class Where(models.TextChoices):
        FORM = "form", "Signup form"
        IMPORT = "import", "Import"
        PREFERENCES = "preferences", "Preference center"
        DASHBOARD = "dashboard", "Dashboard"
        API = "api", "API"

    # No database FK constraint, for the import's sake: see Subscription.subscriber.
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="consent_records", db_constraint=False
    )
    text = models.TextField()
    version = models.CharField(max_length=50, blank=True)
    where = models.CharField(max_length=16, choices=Where.choices)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"consent {self.version or '-'} by {self.subscriber_id} via {self.where}"


class ImportJob(models.Model):
    """One CSV import: the uploaded file, the chosen options, live progress and the summary."""

    class Status(models.TextChoices):
        MAPPING = "mapping", "Waiting for column mapping"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    file = models.FileField(upload_to="imports/")
    original_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.MAPPING)
    # {"delimiter": ",", "encoding": "utf-8-sig", "mapping": {"0": "email", "3": "attr:plan"},
    #  "topics": [ids], "confirmed": bool, "consent_note": str, "update_existing": bool}
    options = models.JSONField(default=dict)
    bytes_total = models.BigIntegerField(default=0)
    bytes_done = models.BigIntegerField(default=0)
    rows_read = models.IntegerField(default=0)
    created = models.IntegerField(default=0)
    updated = models.IntegerField(default=0)
    unchanged = models.IntegerField(default=0)
    suppressed = models.IntegerField(default=0)
    rejected = models.IntegerField(default=0)
    warnings = models.JSONField(default=list, blank=True)
    # Seconds spent in each phase of the import (parse, COPY, merge, ...): where the time went.
    phase_seconds = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"import #{self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.bytes_total:
            return 0
        return min(99, int(100 * self.bytes_done / self.bytes_total))


class ImportRejection(models.Model):
    """One rejected CSV row: its line number in the file and why."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="rejections")
    line = models.IntegerField()
    reason = models.CharField(max_length=255)
    raw = models.TextField(blank=True)

    class Meta:
        ordering = ["line"]

    def __str__(self):
        return f"line {self.line}: {self.reason}"
