from django.conf import settings
from django.db import models

from . import bounces
from .classification import HUMAN, PROXY, SCANNER


class Link(models.Model):
    """A tracked destination of a campaign: click tokens carry its id, never the URL."""

    campaign = models.ForeignKey(
        "campaigns.Campaign", on_delete=models.CASCADE, related_name="links"
    )
    index = models.PositiveIntegerField()
    url = models.URLField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["campaign", "index"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "index"], name="link_campaign_index")
        ]

    def __str__(self):
        return self.url


# --- Everything below belongs to the analytics capability (events, rollups, reputation). ---


class Classification(models.TextChoices):
    HUMAN = HUMAN, "Human"
    PROXY = PROXY, "Privacy proxy"
    SCANNER = SCANNER, "Security scanner"


class CampaignTracking(models.Model):
    """How much a campaign tracks, and the UTM parameters its click redirects add."""

    class Mode(models.TextChoices):
        INDIVIDUAL = "individual", "Individual (per recipient)"
        ANONYMOUS = "anonymous", "Anonymous (aggregate counts only)"
        OFF = "off", "Off"

    campaign = models.OneToOneField(
        "campaigns.Campaign", on_delete=models.CASCADE, primary_key=True, related_name="tracking"
    )
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.INDIVIDUAL)
    utm_source = models.CharField(max_length=100, blank=True)
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=100, blank=True)

    def __str__(self):
        return f"{self.campaign_id}: {self.mode}"


class Event(models.Model):
    """One thing that happened to a message, with the raw facts kept for re-classification.

    ``uid`` makes every write idempotent: a tracking hit carries a random id minted when it
    was answered, an ESP event ``<esp>:<event id>``; a replay or a re-flushed buffer is ignored.

    The table is range-partitioned by month of ``occurred_at`` (analytics.partitions, made by
    migration 0013), so the flusher inserts into a small current-month partition and retention
    drops a whole month at a time. PostgreSQL wants the partition key in every unique index:
    in the database the primary key is (id, occurred_at) and the uid is unique with its
    ``occurred_at`` (a replay carries the same time: see ``Fact.stable_time`` for the writers
    whose time is not their own). Django is still told that ``id`` alone is the primary key
    (the migration's state): ids come from one sequence, so they are unique all the same, and
    ``Event.objects.get(pk=...)``, the admin, ``.delete()`` and the API's id cursor keep
    working, which a CompositePrimaryKey (a tuple pk) would not give them.
    """

    class Kind(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        DEFERRED = "deferred", "Deferred"
        BOUNCED = "bounced", "Bounced"
        REJECTED = "rejected", "Rejected"
        COMPLAINED = "complained", "Complained"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        # The recipient came back (re-subscribed, resumed a pause, a topic switched back on):
        # recorded for the timeline, never counted.
        RESUBSCRIBED = "resubscribed", "Re-subscribed"
        OPENED = "opened", "Opened"
        CLICKED = "clicked", "Clicked"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Other"

    class BounceType(models.TextChoices):
        HARD = bounces.HARD, "Hard"
        SOFT = bounces.SOFT, "Soft"
        # Refused for a fault of the sender (authentication, policy, reputation): the address
        # is kept; it counts against the sending domain (analytics.bounces).
        SENDER = bounces.SENDER, "Sender-caused"

    # Unique by a constraint rather than unique=True, which would add a second (LIKE) index
    # on PostgreSQL that no query uses and every insert pays for.
    uid = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    # No foreign keys to the ledger: events survive deletions and are inserted in bulk.
    delivery_id = models.BigIntegerField(null=True, blank=True)
    campaign_id = models.BigIntegerField(null=True, blank=True)
    subscriber_id = models.BigIntegerField(null=True, blank=True)
    link_id = models.BigIntegerField(null=True, blank=True)
    email_hash = models.CharField(max_length=64, blank=True)
    classification = models.CharField(max_length=8, choices=Classification.choices, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    bounce_type = models.CharField(max_length=8, choices=BounceType.choices, blank=True)
    # Raw facts.
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    method = models.CharField(max_length=8, blank=True)
    prefetch = models.BooleanField(default=False)
    esp = models.CharField(max_length=40, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    url = models.CharField(max_length=2000, blank=True)
    payload = models.JSONField(null=True, blank=True)

    class Meta:
        # With the partition key, as PostgreSQL requires of a partitioned table's unique
        # index; ingestion's ON CONFLICT names these columns.
        constraints = [models.UniqueConstraint(fields=["uid", "occurred_at"], name="event_uid")]
        # Only what reads need: each index is paid for on every one of millions of inserts.
        indexes = [
            models.Index(fields=["campaign_id", "kind", "occurred_at"], name="event_campaign"),
            models.Index(fields=["subscriber_id", "occurred_at"], name="event_subscriber"),
            models.Index(fields=["email_hash", "kind", "occurred_at"], name="event_email"),
        ]

    def __str__(self):
        return f"{self.kind} {self.delivery_id or self.message_id}"


class DeliveryActivity(models.Model):
    """What became of one delivery: the feedback the ESP and the tracking endpoints reported.

    Kept beside campaigns.Delivery (the sending ledger, owned by the sending pipeline) rather
    than on it, so that event ingestion never contends with the workers claiming batches.
    """

    delivery = models.OneToOneField(
        "campaigns.Delivery",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="activity",
        db_constraint=False,
    )
    campaign_id = models.BigIntegerField(db_index=True)
    subscriber_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    esp_status = models.CharField(max_length=16, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    deferred_count = models.PositiveIntegerField(default=0)
    bounced_at = models.DateTimeField(null=True, blank=True)
    bounce_type = models.CharField(max_length=8, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    opens = models.PositiveIntegerField(default=0)
    human_opens = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    human_clicks = models.PositiveIntegerField(default=0)
    first_open_at = models.DateTimeField(null=True, blank=True)
    first_human_open_at = models.DateTimeField(null=True, blank=True)
    first_click_at = models.DateTimeField(null=True, blank=True)
    first_human_click_at = models.DateTimeField(null=True, blank=True)
    last_click_at = models.DateTimeField(null=True, blank=True)
    last_link_id = models.BigIntegerField(null=True, blank=True)
    # The links this recipient clicked as a human, so a link's unique human clicks are counted
    # from the row ingestion loads anyway rather than from the history of the events.
    human_link_ids = models.JSONField(default=list, blank=True)

    def __str__(self):
        return f"delivery {self.delivery_id}"


class CampaignStats(models.Model):
    """Per-campaign counters, maintained as events arrive (reports never count raw events)."""

    campaign = models.OneToOneField(
        "campaigns.Campaign", on_delete=models.CASCADE, primary_key=True, related_name="stats"
    )
    delivered = models.PositiveIntegerField(default=0)
    deferred = models.PositiveIntegerField(default=0)
    bounced_hard = models.PositiveIntegerField(default=0)
    bounced_soft = models.PositiveIntegerField(default=0)
    # Refused for the sender's fault; a database default too, for rows written in raw SQL.
    bounced_sender = models.PositiveIntegerField(default=0, db_default=0)
    rejected = models.PositiveIntegerField(default=0)
    complained = models.PositiveIntegerField(default=0)
    unsubscribed = models.PositiveIntegerField(default=0)
    opens = models.PositiveIntegerField(default=0)
    opens_human = models.PositiveIntegerField(default=0)
    opens_proxy = models.PositiveIntegerField(default=0)
    opens_scanner = models.PositiveIntegerField(default=0)
    unique_opens = models.PositiveIntegerField(default=0)
    unique_human_opens = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    clicks_human = models.PositiveIntegerField(default=0)
    clicks_scanner = models.PositiveIntegerField(default=0)
    unique_clicks = models.PositiveIntegerField(default=0)
    unique_human_clicks = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"stats of {self.campaign_id}"


class CampaignSeries(models.Model):
    """Opens and clicks per campaign per hour, for the charts."""

    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+")
    bucket = models.DateTimeField()
    opens = models.PositiveIntegerField(default=0)
    opens_human = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    clicks_human = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "bucket"], name="series_campaign_bucket")
        ]
        indexes = [models.Index(fields=["bucket"], name="series_bucket")]

    def __str__(self):
        return f"{self.campaign_id} @ {self.bucket}"


class LinkStats(models.Model):
    link = models.OneToOneField(
        Link, on_delete=models.CASCADE, primary_key=True, related_name="stats"
    )
    campaign_id = models.BigIntegerField(db_index=True)
    clicks = models.PositiveIntegerField(default=0)
    clicks_human = models.PositiveIntegerField(default=0)
    unique_human_clicks = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"link {self.link_id}: {self.clicks}"


class CampaignBreakdown(models.Model):
    """Counts per campaign by mail client, device and recipient domain."""

    class Dimension(models.TextChoices):
        CLIENT = "client", "Mail client"
        DEVICE = "device", "Device"
        DOMAIN = "domain", "Recipient domain"

    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+")
    dimension = models.CharField(max_length=8, choices=Dimension.choices)
    key = models.CharField(max_length=200)
    delivered = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    human_opens = models.PositiveIntegerField(default=0)  # unique per delivery
    human_clicks = models.PositiveIntegerField(default=0)  # unique per delivery

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "dimension", "key"], name="breakdown_unique"
            )
        ]

    def __str__(self):
        return f"{self.campaign_id} {self.dimension}={self.key}"


class DomainDaily(models.Model):
    """Per sending domain per day: the base of the rolling reputation rates."""

    domain = models.CharField(max_length=200)
    day = models.DateField()
    delivered = models.PositiveIntegerField(default=0)
    bounced_hard = models.PositiveIntegerField(default=0)
    bounced_soft = models.PositiveIntegerField(default=0)
    bounced_sender = models.PositiveIntegerField(default=0, db_default=0)
    complained = models.PositiveIntegerField(default=0)
    opens_human = models.PositiveIntegerField(default=0)
    clicks_human = models.PositiveIntegerField(default=0)
    unsubscribed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["domain", "day"], name="domain_day")]

    def __str__(self):
        return f"{self.domain} {self.day}"


class ReputationAlert(models.Model):
    # Set by guardrail.campaign_alerts: the acknowledgement in force (not a column).
    in_force: list["AlertAcknowledgement"]
    acknowledgement: "AlertAcknowledgement | None"

    class Scope(models.TextChoices):
        DOMAIN = "domain", "Sending domain"
        CAMPAIGN = "campaign", "Campaign"

    class Metric(models.TextChoices):
        COMPLAINTS = "complaints", "Complaint rate"
        HARD_BOUNCES = "hard_bounces", "Hard bounce rate"
        SENDER_BOUNCES = "sender_bounces", "Sender-caused rejection rate"

    class Level(models.TextChoices):
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"

    scope = models.CharField(max_length=8, choices=Scope.choices)
    key = models.CharField(max_length=200)  # the domain, or the campaign id
    metric = models.CharField(max_length=16, choices=Metric.choices)
    level = models.CharField(max_length=8, choices=Level.choices)
    rate = models.FloatField()
    volume = models.PositiveIntegerField()
    message = models.CharField(max_length=500)
    paused_campaigns = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "key", "metric"],
                condition=models.Q(resolved_at__isnull=True),
                name="alert_open_once",
            )
        ]

    def __str__(self):
        return self.message


class AlertAcknowledgement(models.Model):
    """An admin's decision to let campaigns run while a critical alert stays open: who, when,
    why, and at which rate. It is in force until it lapses (analytics.guardrail says when);
    lapsed ones stay as the record."""

    alert = models.ForeignKey(
        ReputationAlert, on_delete=models.CASCADE, related_name="acknowledgements"
    )
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField()
    note = models.CharField(max_length=500)
    rate = models.FloatField(help_text="The alert's rate when it was acknowledged.")
    campaign = models.ForeignKey(
        "campaigns.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The campaign page it was acknowledged from.",
    )
    lapsed_at = models.DateTimeField(null=True, blank=True)
    lapsed_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-acknowledged_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert"],
                condition=models.Q(lapsed_at__isnull=True),
                name="alert_acknowledged_once",
            )
        ]

    def __str__(self):
        return f"{self.alert_id} acknowledged at {self.rate:.2%}: {self.note}"


class SendingDomain(models.Model):
    """A domain mail is sent from, what its DNS should say, and the last check's results."""

    class Status(models.TextChoices):
        PASS = "pass", "Pass"
        WARN = "warn", "Warning"
        FAIL = "fail", "Fail"
        UNCHECKED = "unchecked", "Not checked yet"

    domain = models.CharField(max_length=200, unique=True)
    spf_include = models.CharField(
        max_length=200,
        blank=True,
        help_text="What the SPF record must include for your ESP, e.g. mailgun.org, "
        "spf.mtasv.net, amazonses.com. Empty: any SPF record passes.",
    )
    dkim_selector = models.CharField(max_length=100, blank=True, help_text="e.g. k1, pm, s1")
    sending_ips = models.CharField(
        max_length=500, blank=True, help_text="Dedicated sending IPs, comma-separated (optional)."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.UNCHECKED)
    results = models.JSONField(default=list, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    # The sending IPs on DNS blocklists (analytics.blocklists), checked more often than the
    # DNS records: a listing can appear any hour.
    blocklist_results = models.JSONField(default=list, blank=True)
    blocklists_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self):
        return self.domain


class DkimKey(models.Model):
    """A DKIM key of a sending domain (see analytics.dkim). ``pending`` keys wait for their
    DNS record; the ``active`` ones sign (one per algorithm); ``retiring`` keys no longer sign
    but must stay published until mail signed with them has been delivered and read."""

    class Algorithm(models.TextChoices):
        RSA = "rsa", "RSA 2048"
        ED25519 = "ed25519", "Ed25519"

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for its DNS record"
        ACTIVE = "active", "Signing"
        RETIRING = "retiring", "Retired, keep published for now"
        REVOKED = "revoked", "Removed"

    domain = models.ForeignKey(SendingDomain, on_delete=models.CASCADE, related_name="dkim_keys")
    selector = models.CharField(max_length=63)
    algorithm = models.CharField(max_length=10, choices=Algorithm.choices, default=Algorithm.RSA)
    private_key = models.TextField(help_text="PEM, encrypted (Fernet, keyed from SECRET_KEY).")
    public_key = models.TextField(help_text="The p= value of the TXT record.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["domain", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "selector"], name="dkim_selector_unique"),
            models.UniqueConstraint(
                fields=["domain", "algorithm"],
                condition=models.Q(state="active"),
                name="dkim_one_active_key_per_algorithm",
            ),
        ]

    def __str__(self):
        return f"{self.selector}._domainkey.{self.domain.domain}"

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain.domain}"

    @property
    def record_value(self) -> str:
        return f"v=DKIM1; k={self.algorithm}; p={self.public_key}"


class BounceMessage(models.Model):
    """One message read from the bounce mailbox, so each is processed once (by its IMAP UID
    within the folder's UIDVALIDITY); unparseable ones stay in the mailbox and are listed."""

    class Kind(models.TextChoices):
        DSN = "dsn", "Delivery status notification"
        ARF = "arf", "Feedback-loop complaint"
        AUTO_REPLY = "auto-reply", "Automatic reply (not a bounce)"
        LEGACY = "legacy", "Non-standard bounce"
        UNPARSEABLE = "unparseable", "Could not be read"

    mailbox = models.CharField(max_length=300)
    uidvalidity = models.BigIntegerField()
    uid = models.BigIntegerField()
    kind = models.CharField(max_length=12, choices=Kind.choices)
    subject = models.CharField(max_length=300, blank=True)
    sender = models.CharField(max_length=300, blank=True)
    facts = models.PositiveIntegerField(default=0)
    note = models.CharField(max_length=500, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at", "-uid"]
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "uidvalidity", "uid"], name="bounce_message_once"
            )
        ]
        indexes = [models.Index(fields=["kind", "-received_at"], name="bounce_message_kind")]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.subject}"


class SubscriberEngagement(models.Model):
    """Human engagement per subscriber, maintained as events arrive: score and sunset input."""

    subscriber = models.OneToOneField(
        "subscribers.Subscriber",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="engagement",
        db_constraint=False,
    )
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_human_open_at = models.DateTimeField(null=True, blank=True)
    last_human_click_at = models.DateTimeField(null=True, blank=True)
    human_opens = models.PositiveIntegerField(default=0)
    human_clicks = models.PositiveIntegerField(default=0)
    score = models.PositiveSmallIntegerField(default=0, db_index=True)

    def __str__(self):
        return f"engagement of {self.subscriber_id}: {self.score}"


class SunsetPolicy(models.Model):
    """No human open or click in ``inactive_days`` -> the re-engagement campaign -> then,
    ``grace_days`` after it reached them with still no human engagement, unsubscribed."""

    enabled = models.BooleanField(default=False)
    inactive_days = models.PositiveIntegerField(default=180)
    grace_days = models.PositiveIntegerField(default=30)
    reengagement_campaign = models.ForeignKey(
        "campaigns.Campaign", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_count = models.PositiveIntegerField(default=0)
    # Who the policy would touch, computed on request and by the periodic task (not on every
    # page view: it scans the whole list), with the settings it was computed for.
    preview = models.JSONField(default=dict, blank=True)
    preview_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"sunset after {self.inactive_days} days"

    def settings_key(self) -> list:
        return [self.inactive_days, self.grace_days, self.reengagement_campaign_id]

    @property
    def preview_is_current(self) -> bool:
        return bool(self.preview_at) and self.preview.get("settings") == self.settings_key()


class ReadinessRun(models.Model):
    """One bulk-sender readiness check of a sending domain (see analytics.readiness): a seed
    message sent through the domain's connection, read back over IMAP and judged against
    Gmail's, Yahoo's and Outlook.com's requirements. The page shows the last one."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        ERROR = "error", "Could not run"

    domain = models.ForeignKey(
        SendingDomain, on_delete=models.CASCADE, related_name="readiness_runs"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    token = models.CharField(max_length=32, unique=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    results = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=1000, blank=True)
    connection_name = models.CharField(max_length=100, blank=True)
    from_email = models.CharField(max_length=254, blank=True)
    envelope_sender = models.CharField(max_length=254, blank=True)
    # What the seed message looked like when it arrived (its header block), for the page.
    seed_headers = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["domain", "-started_at"], name="readiness_domain_recent")]

    def __str__(self):
        return f"{self.domain} readiness {self.started_at:%Y-%m-%d %H:%M} ({self.status})"
