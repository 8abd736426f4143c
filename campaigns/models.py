from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models

from .smtp_connect import SmtpSettings


class CampaignTransitionError(Exception):
    """An illegal state change: the message says which move was refused and why."""


# What a marketer calls a backend; its dotted path is for whoever configures it.
BACKEND_LABELS = {
    "django.core.mail.backends.smtp.EmailBackend": "SMTP",
    "django.core.mail.backends.console.EmailBackend": "Console (development)",
    "django.core.mail.backends.filebased.EmailBackend": "Files (development)",
    "django.core.mail.backends.locmem.EmailBackend": "In memory (tests)",
    "django.core.mail.backends.dummy.EmailBackend": "Discard everything",
}
ESP_LABELS = {
    "amazon_ses": "Amazon SES",
    "brevo": "Brevo",
    "mailersend": "MailerSend",
    "mailgun": "Mailgun",
    "mailjet": "Mailjet",
    "mailpace": "MailPace",
    "mailtrap": "Mailtrap",
    "mandrill": "Mandrill",
    "postal": "Postal",
    "postmark": "Postmark",
    "resend": "Resend",
    "scaleway": "Scaleway TEM",
    "sendgrid": "SendGrid",
    "sendinblue": "Brevo",
    "sparkpost": "SparkPost",
    "unisender_go": "Unisender Go",
}


def backend_label(path: str) -> str:
    """ "anymail.backends.amazon_ses.EmailBackend" -> "Amazon SES"; an unknown backend shows
    its module's name."""
    if path in BACKEND_LABELS:
        return BACKEND_LABELS[path]
    parts = path.split(".")
    if len(parts) >= 3 and parts[:2] == ["anymail", "backends"]:
        return ESP_LABELS.get(parts[2], parts[2].replace("_", " ").title())
    module = parts[-2] if len(parts) >= 2 else path
    return module.replace("_", " ").title() or path


class SendingConnection(models.Model):
    """Where messages go: any django-anymail ESP backend, or SMTP, with its own pace.

    In test mode the connection delivers nothing: every message is captured in the sandbox
    inbox instead (SandboxMessage), whatever the backend says.
    """

    name = models.CharField(max_length=100, unique=True)
    backend = models.CharField(
        max_length=200,
        default="django.core.mail.backends.smtp.EmailBackend",
        help_text="Dotted path of a Django email backend, e.g. anymail.backends.mailgun."
        "EmailBackend, or django.core.mail.backends.smtp.EmailBackend.",
    )
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text="Keyword arguments for the backend (SMTP: host, port, username, password, "
        "use_tls; ESP: api_key ...).",
    )
    sending_domain = models.CharField(
        max_length=200, blank=True, help_text="Domain of Message-IDs; defaults to From's."
    )
    test_mode = models.BooleanField(
        default=False, help_text="Deliver nothing: capture every message in the sandbox inbox."
    )
    rate_per_second = models.FloatField(
        null=True, blank=True, help_text="Shared by every worker; empty means no limit."
    )
    domain_caps = models.JSONField(
        default=dict, blank=True, help_text='Per recipient domain, per minute: {"gmail.com": 600}'
    )
    warmup_plan = models.JSONField(
        default=list, blank=True, help_text="Daily caps, day 1 first: [500, 1000, 2000, ...]"
    )
    warmup_started_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name

    @property
    def backend_label(self) -> str:
        return backend_label(self.backend)

    @property
    def is_smtp(self) -> bool:
        return self.backend == "django.core.mail.backends.smtp.EmailBackend"

    @property
    def tls(self) -> str:
        """none / verified / pinned / unverified for SMTP; "esp" for an ESP's API (HTTPS)."""
        return SmtpSettings.of(self).tls if self.is_smtp else "esp"


class Campaign(models.Model):
    # Figures the campaign lists and the dashboard set for their templates (not columns).
    progress: dict[str, Any]
    open_rate: float
    click_rate: float

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"

    class Kind(models.TextChoices):
        CAMPAIGN = "campaign", "Campaign"
        # One hidden campaign per template for the messages sent one by one (an order
        # confirmation, a password reset: campaigns.transactional), so their deliveries,
        # events and reports are the ledger's like any other.
        TRANSACTIONAL = "transactional", "Transactional"

    class ScheduleKind(models.TextChoices):
        NOW = "now", "Send now"
        ONCE = "once", "Once, at a date and time"
        RECURRING = "recurring", "Every week on a weekday and hour"

    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    kind = models.CharField(
        max_length=16, choices=Kind.choices, default=Kind.CAMPAIGN, db_default=Kind.CAMPAIGN
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # Content: the template, and the version pinned when sending starts.
    template = models.ForeignKey(
        "templates_app.Template", null=True, blank=True, on_delete=models.PROTECT
    )
    template_version = models.ForeignKey(
        "templates_app.TemplateVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    subject = models.CharField(max_length=255, blank=True, help_text="Empty: the template's.")
    preheader = models.CharField(max_length=255, blank=True)

    # Audience: active subscriptions to any of the topics and / or a segment.
    topics = models.ManyToManyField("subscribers.Topic", blank=True, related_name="+")
    segment = models.ForeignKey(
        "subscribers.Segment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    from_name = models.CharField(max_length=150, blank=True)
    from_email = models.EmailField(blank=True)
    reply_to = models.EmailField(blank=True)
    connection = models.ForeignKey(
        SendingConnection, null=True, blank=True, on_delete=models.PROTECT
    )
    track_links = models.BooleanField(default=True)
    track_opens = models.BooleanField(default=True)
    tags = models.JSONField(default=list, blank=True)
    test_mode = models.BooleanField(
        default=False, help_text="Deliver nothing: capture every message in the sandbox inbox."
    )
    seed_addresses = models.TextField(blank=True, help_text="Test sends go here, one per line.")

    # Scheduling.
    schedule_kind = models.CharField(
        max_length=16, choices=ScheduleKind.choices, default=ScheduleKind.NOW
    )
    schedule_timezone = models.CharField(max_length=64, default="UTC")
    # "Once": the wall-clock date and time the marketer chose, in schedule_timezone. Kept as a
    # local date and time (not a DateTimeField, which holds instants) so what they typed is
    # what they see again; the UTC instant is worked out when scheduling (next_run_at).
    send_date = models.DateField(
        null=True, blank=True, help_text="Once: the local date, in schedule_timezone."
    )
    send_time = models.TimeField(
        null=True, blank=True, help_text="Once: the local wall-clock time, in schedule_timezone."
    )
    recurring_weekday = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="0 = Monday ... 6 = Sunday"
    )
    recurring_hour = models.PositiveSmallIntegerField(null=True, blank=True)
    only_new_since_last = models.BooleanField(
        default=False, help_text="Recurring: only subscribers who joined since the last one."
    )
    local_send_hour = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="At the recipient's local time: hold each message until this hour in the "
        "subscriber's time zone (the campaign's when they have none).",
    )
    next_run_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_occurrence_at = models.DateTimeField(null=True, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="occurrences"
    )
    audience_since = models.DateTimeField(
        null=True, blank=True, help_text="Only subscribers created after this (occurrences)."
    )

    # Sending progress and safety.
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    total = models.PositiveIntegerField(default=0)
    status_reason = models.CharField(max_length=500, blank=True)
    max_consecutive_failures = models.PositiveIntegerField(default=20)
    consecutive_failures = models.PositiveIntegerField(default=0)
    parallelism = models.PositiveSmallIntegerField(
        default=4, help_text="How many sending tasks work on this campaign at once."
    )
    preflight_override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set while the sending connection cannot be reached: the batch waits (nothing is failed)
    # and the page says since when.
    connection_down_since = models.DateTimeField(null=True, blank=True)
    unknown_settle_hours = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Settle deliveries of unknown outcome left undecided this many hours "
        "(empty: a person always decides).",
    )
    unknown_settle_action = models.CharField(
        max_length=8,
        choices=[("accept", "Count them as sent"), ("resend", "Send them again")],
        default="accept",
        blank=True,
        help_text="A duplicate costs more reputation than one missed message.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_run_at"], name="campaign_due")]
        constraints = [
            models.UniqueConstraint(
                fields=["template"],
                condition=models.Q(kind="transactional"),
                name="campaign_transactional_per_template",
            )
        ]

    def __str__(self):
        return self.name

    @property
    def effective_subject(self) -> str:
        if self.subject:
            return self.subject
        if self.template_version is not None:
            return self.template_version.subject
        return self.template.subject if self.template is not None else ""

    @property
    def send_at_local(self) -> datetime | None:
        """The "once" wall-clock time as one naive datetime, read in schedule_timezone."""
        if self.send_date is None or self.send_time is None:
            return None
        return datetime.combine(self.send_date, self.send_time)

    @send_at_local.setter
    def send_at_local(self, value: datetime | None) -> None:
        if value is not None and value.tzinfo is not None:
            # An instant has no single wall-clock reading: convert it in schedule_timezone
            # before handing it over (campaigns.forms.ScheduleForm does).
            raise ValueError("send_at_local is a wall-clock time: pass a naive datetime.")
        self.send_date = value.date() if value is not None else None
        self.send_time = value.time() if value is not None else None

    @property
    def is_test(self) -> bool:
        return self.test_mode or (self.connection is not None and self.connection.test_mode)


class Delivery(models.Model):
    """One row per recipient of a campaign: the ledger that makes sending exactly-once.

    pending -> claimed (a sender took it in a batch, under its lease) -> sent | failed |
    skipped | unknown, the moment of the handoff being written in the sender's journal
    (``Handoff``). A row found ``claimed`` under a lapsed lease goes back to pending unless
    the journal says it was being handed off; that one, or one whose connection died after
    its body went out, is ``unknown`` until a person or the campaign's policy decides (see
    campaigns.pipeline). ``sending`` on the ledger itself is left from earlier releases.
    Counts per state are kept by a trigger in DeliveryCount.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CLAIMED = "claimed", "Claimed"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        UNKNOWN = "unknown", "Unknown (handoff interrupted)"

    class Resolution(models.TextChoices):
        NONE = "", "—"
        ACCEPTED = "accepted", "Accepted as sent by a person"
        RESENT = "resent", "Sent again by a person"
        ACCEPTED_BY_POLICY = "accepted_by_policy", "Counted as sent by the campaign's policy"
        RESENT_BY_POLICY = "resent_by_policy", "Sent again by the campaign's policy"

    # The snapshot writes a campaign's whole audience in one INSERT ... SELECT (10M rows for
    # a 10M list), so every index and check a row pays is paid ten million times. Hence:
    # - no database-level foreign keys (db_constraint=False, as DeliveryActivity and Event):
    #   PostgreSQL would check, and key-share lock, the subscriber and the campaign of every
    #   row at commit, a third of the snapshot's time (bench/scale.py). The rows come from a
    #   SELECT over those very tables, and deletions go through Django's on_delete rules (the
    #   ORM's collector, or subscribers_bulk_delete set-based), which do not need them;
    # - no single-column index on either key: delivery_unique (campaign, subscriber) and
    #   delivery_claim lead with the campaign, delivery_subscriber with the subscriber.
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_constraint=False,
        db_index=False,
    )
    # Analytics survive the subscriber's erasure: the row keeps only the hash then.
    subscriber = models.ForeignKey(
        "subscribers.Subscriber",
        null=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
        db_constraint=False,
        db_index=False,
    )
    email = models.CharField(max_length=254)
    email_hash = models.CharField(max_length=64)
    domain = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    claim_token = models.CharField(max_length=32, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # How an ``unknown`` row was settled, by whom and when (kept after it leaves ``unknown``).
    resolution = models.CharField(
        max_length=24,
        choices=Resolution.choices,
        default=Resolution.NONE,
        db_default=Resolution.NONE,  # the snapshot's raw INSERT ... SELECT leaves it out
        blank=True,
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Indexed only where set (see Meta): nearly every row has none. No database constraint
    # either (see campaign): even a NULL key queues a check per inserted row until commit.
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    # Transactional messages (campaigns.transactional): the caller's key, unique per template's
    # hidden campaign (a replayed request sends nothing twice), and the data merged into it.
    idempotency_key = models.CharField(max_length=200, blank=True, db_default="")
    data = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "subscriber"], name="delivery_unique"),
            models.UniqueConstraint(
                fields=["campaign", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="delivery_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "status", "id"], name="delivery_claim"),
            # Only rows handed off have a Message-ID: the snapshot's rows never enter it
            # (queries by Message-ID exclude the empty one to use it).
            models.Index(
                fields=["message_id"],
                condition=~models.Q(message_id=""),
                name="delivery_message_id",
            ),
            models.Index(
                fields=["resolved_by"],
                condition=models.Q(resolved_by__isnull=False),
                name="delivery_resolved_by",
            ),
            models.Index(fields=["subscriber", "sent_at"], name="delivery_subscriber"),
            # Rows with no subscriber (transactional messages, sent to an address; a deleted
            # subscriber's): a person's export and erasure find them by the address hash.
            models.Index(
                fields=["email_hash"],
                condition=models.Q(subscriber__isnull=True),
                name="delivery_address",
            ),
            # Reconciliation reads only the rows in flight, whatever the ledger's size.
            models.Index(
                fields=["claim_token"],
                condition=models.Q(status__in=["claimed", "sending"]),
                name="delivery_in_flight",
            ),
        ]

    def __str__(self):
        return f"{self.campaign_id} → {self.email} ({self.status})"


class SendLease(models.Model):
    """A sender's lease on the rows it claimed, kept where the rows are.

    The sender renews ``expires_at`` from a heartbeat thread, even while a send blocks; a
    renewal of a lease already expired fails, so once it lapses it is gone for good and
    reconciliation may take its rows back. No cache restart, flush or eviction can release a
    live lease: it is a row in PostgreSQL, not a key in Redis.
    """

    token = models.CharField(max_length=32, primary_key=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    host = models.CharField(max_length=200, blank=True, help_text="hostname:pid of the sender")

    class Meta:
        indexes = [models.Index(fields=["campaign", "expires_at"], name="lease_campaign")]

    def __str__(self):
        return f"{self.token} ({self.campaign_id}, until {self.expires_at:%H:%M:%S})"


class Handoff(models.Model):
    """A sender's journal of the messages it is handing off, one row per delivery, written
    per message and moved onto the ledger a batch at a time (see campaigns.pipeline).

    A row is inserted ``sending`` just before its message goes to the backend and rewritten
    with the outcome once the backend answered; the ledger rows stay ``claimed`` meanwhile.
    The sender moves decided rows to the ledger in one statement every second or so, and
    reconciliation moves those of a lapsed lease (a ``sending`` one becomes ``unknown``). The
    row is narrow and unreferenced (no foreign key, no trigger), so the per-message write
    costs PostgreSQL a fraction of an update of the ledger row, its five indexes and its
    counters."""

    delivery_id = models.BigIntegerField(primary_key=True)
    token = models.CharField(max_length=32)
    status = models.CharField(max_length=16)
    message_id = models.CharField(max_length=255, blank=True)
    sent_at = models.DateTimeField(null=True)
    error = models.TextField(blank=True)
    not_before = models.DateTimeField(null=True)
    attempts_adjust = models.SmallIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["token"], name="handoff_token")]

    def __str__(self):
        return f"{self.delivery_id} ({self.status}, {self.token})"


class DeliveryCount(models.Model):
    """How many of a campaign's deliveries are in each state: kept by a PostgreSQL trigger on
    the ledger (statement level, so a batch update is one upsert), read by the progress bar
    and the campaign list instead of a GROUP BY over the ledger. Spread over a few shards so
    parallel senders of one campaign do not queue on one counter row."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16)
    shard = models.PositiveSmallIntegerField()
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "status", "shard"], name="delivery_count_unique"
            )
        ]

    def __str__(self):
        return f"{self.campaign_id} {self.status}[{self.shard}] = {self.n}"


class SandboxMessage(models.Model):
    """A message a test-mode campaign or connection captured instead of delivering."""

    campaign = models.ForeignKey(
        Campaign, null=True, on_delete=models.CASCADE, related_name="sandbox_messages"
    )
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.CASCADE)
    to = models.CharField(max_length=254)
    subject = models.CharField(max_length=998)
    html = models.TextField(blank=True)
    text = models.TextField(blank=True)
    headers = models.JSONField(default=dict)
    raw = models.TextField()
    is_test_send = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.to}: {self.subject}"


# A campaign's sender, tracking and test settings: what its form edits and a copy keeps.
SENDER_AND_TRACKING_FIELDS = [
    "from_name",
    "from_email",
    "reply_to",
    "connection",
    "track_links",
    "track_opens",
    "tags",
    "test_mode",
    "seed_addresses",
]
