"""Writes about endpoints: create and edit (the cached "who wants what" is forgotten with
every change), send a message again, disable with an alert."""

from datetime import UTC, datetime

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics.models import ReputationAlert

from . import emit
from .models import WebhookEndpoint, WebhookMessage, new_secret

ALERT_SCOPE = "webhook"  # not one of ReputationAlert.Scope's: shown as is, found by this key
ALERT_METRIC = "webhook_failures"


def endpoint_save(*, endpoint: WebhookEndpoint, user: User | None = None) -> WebhookEndpoint:
    """Create or update; re-enabling starts the failure count again and resolves the alert."""
    if endpoint.pk is None and user is not None:
        endpoint.created_by = user
    if endpoint.enabled:
        endpoint.consecutive_failures = 0
        endpoint.disabled_reason = ""
    with transaction.atomic():
        endpoint.save()
        if endpoint.enabled:
            _resolve_alert(endpoint.pk)
        emit.wanted_changed()
    if endpoint.enabled:
        emit.kick_if_due()
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    with transaction.atomic():
        _resolve_alert(endpoint.pk)
        endpoint.delete()
        emit.wanted_changed()


def endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    endpoint.secret = new_secret()
    endpoint.save(update_fields=["secret"])
    return endpoint


def webhook_message_resend(*, message: WebhookMessage) -> None:
    """ "Send again": the message is due now, with a fresh round of retries."""
    WebhookMessage.objects.filter(pk=message.pk).update(
        status=WebhookMessage.Status.PENDING,
        attempts=0,
        next_attempt_at=datetime.now(UTC),
    )
    emit.kick_if_due()


def _resolve_alert(endpoint_id: int) -> None:
    ReputationAlert.objects.filter(
        scope=ALERT_SCOPE, key=str(endpoint_id), resolved_at__isnull=True
    ).update(resolved_at=timezone.now())


def endpoints_disabled_alert(*, endpoint_ids: list[int]) -> list[ReputationAlert]:
    """An alert per endpoint just disabled for failing (shown with the reputation alerts on
    the dashboard), and the alert.raised webhook to the endpoints still working."""
    raised = []
    emit.wanted_changed()
    for endpoint in WebhookEndpoint.objects.filter(pk__in=endpoint_ids):
        try:
            with transaction.atomic():
                alert = ReputationAlert.objects.create(
                    scope=ALERT_SCOPE,
                    key=str(endpoint.pk),
                    metric=ALERT_METRIC,
                    level=ReputationAlert.Level.WARNING,
                    rate=0,
                    volume=endpoint.consecutive_failures,
                    message=f"Webhook endpoint {endpoint.url[:300]} was disabled after "
                    f"{endpoint.consecutive_failures} failed attempts in a row. Fix it, then "
                    "enable it again: its messages are kept and sent then.",
                )
        except IntegrityError:  # already alerted and not resolved
            continue
        raised.append(alert)
        emit.alert_raised(alert.pk)
    return raised
