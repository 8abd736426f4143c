"""Outgoing webhooks: endpoints, the outbox of signed messages, and every attempt to post one.

An event is written to the outbox (``WebhookMessage``) by the code that writes the fact
itself, set-based (``webhooks.emit``), one row per subscribed endpoint; the dispatcher
(``webhooks.dispatch``, its own Celery queue) posts due rows and records each try.
"""

import base64
import secrets

from django.conf import settings
from django.db import models

# What a marketer may subscribe to. Machine opens and clicks (privacy proxies, security
# scanners) are sent as open.machine / click.machine to endpoints that subscribed to the human
# kind and asked for machine ones too.
EVENT_TYPES = [
    ("subscriber.created", "Subscriber created"),
    ("subscriber.confirmed", "Subscriber confirmed"),
    ("subscriber.updated", "Subscriber updated"),
    ("subscriber.unsubscribed", "Subscriber unsubscribed"),
    ("subscriber.erased", "Subscriber erased"),
    ("delivery.sent", "Message sent"),
    ("delivery.bounced", "Message bounced"),
    ("delivery.complained", "Complaint (marked as spam)"),
    ("open.human", "Human open"),
    ("click.human", "Human click"),
    ("campaign.started", "Campaign started"),
    ("campaign.paused", "Campaign paused"),
    ("campaign.finished", "Campaign finished"),
    ("form.submitted", "Signup form submitted"),
    ("alert.raised", "Alert raised"),
]
EVENT_TYPE_NAMES = [name for name, _ in EVENT_TYPES]
MACHINE_TYPES = {"open.machine": "open.human", "click.machine": "click.human"}


def new_secret() -> str:
    """A Standard Webhooks secret: whsec_ and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class WebhookEndpoint(models.Model):
    url = models.URLField(max_length=1000)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list)  # a list of EVENT_TYPE_NAMES
    include_machine = models.BooleanField(
        default=False,
        help_text="Also send opens and clicks made by machines (privacy proxies, scanners) "
        "as open.machine / click.machine.",
    )
    secret = models.CharField(max_length=100, default=new_secret)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    # Failed attempts in a row (reset by any success): past WEBHOOK_DISABLE_AFTER_FAILURES the
    # endpoint is disabled and an alert raised.
    consecutive_failures = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.url

    def wants(self, event_type: str) -> bool:
        if event_type in MACHINE_TYPES:
            return self.include_machine and MACHINE_TYPES[event_type] in self.event_types
        return event_type in self.event_types


class WebhookMessage(models.Model):
    """One event for one endpoint (the outbox row). ``msg_id`` is the webhook-id header: the
    same for every try and every endpoint of one event, so receivers de-duplicate on it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Gave up"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="messages")
    msg_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=40)
    # The body. Events from ingestion (opens, clicks, bounces, complaints) leave it empty and
    # name their analytics Event in ``ref``: the dispatcher builds their body from it when it
    # claims them, so the tracking flusher writes the smallest row it can.
    payload = models.JSONField(null=True, blank=True)
    ref = models.CharField(max_length=200, blank=True, db_default="")
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_default="pending"
    )
    attempts = models.PositiveSmallIntegerField(default=0, db_default=0)
    # When the next try is due; while a dispatcher holds the row, the end of its lease.
    next_attempt_at = models.DateTimeField(db_default=models.functions.Now())
    created_at = models.DateTimeField(db_default=models.functions.Now())
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, db_default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "msg_id"], name="webhook_message_once")
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="webhook_message_due",
            ),
        ]

    def __str__(self):
        return f"{self.event_type} {self.msg_id} → {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One POST of a message: what the endpoint answered (or why there was no answer)."""

    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="tries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="+")
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=300, blank=True)
    ok = models.BooleanField()

    class Meta:
        indexes = [models.Index(fields=["endpoint", "-id"], name="webhook_attempt_endpoint")]

    def __str__(self):
        return f"{self.message_id} {self.response_code or self.error}"
