"""The feedback loop: anymail's normalized tracking events from any ESP become Events.

anymail validates the request (WEBHOOK_SECRET basic auth, the ESP's own signature where it has
one) and parses the ESP's payload; this receiver only maps the result. An unknown message id
is stored as an Event with no delivery, not an error; a database failure does raise, so the
ESP retries later (and the event's uid makes the retry count once).
"""

from anymail.signals import EventType, RejectReason, tracking
from django.dispatch import receiver
from django.utils import timezone

from .ingest import Fact, esp_uid, ingest_facts
from .models import Event

K = Event.Kind

KINDS = {
    EventType.DELIVERED: K.DELIVERED,
    EventType.DEFERRED: K.DEFERRED,
    EventType.BOUNCED: K.BOUNCED,
    EventType.REJECTED: K.REJECTED,
    EventType.COMPLAINED: K.COMPLAINED,
    EventType.UNSUBSCRIBED: K.UNSUBSCRIBED,
    EventType.OPENED: K.OPENED,
    EventType.CLICKED: K.CLICKED,
    EventType.FAILED: K.FAILED,
}
# Events that say nothing about the recipient: not stored.
IGNORED = {
    EventType.QUEUED,
    EventType.SENT,
    EventType.SUBSCRIBED,
    EventType.INBOUND,
    EventType.AUTORESPONDED,
}

SPARKPOST_SOFT_CLASSES = {"20", "21", "22", "23", "24", "40", "60", "70", "100"}


def bounce_type(event) -> str:
    """hard or soft, from what the ESP said (anymail normalizes both to 'bounced')."""
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    if raw.get("Type") == "SoftBounce":  # Postmark
        return Event.BounceType.SOFT
    if raw.get("event") == "soft_bounce":  # Brevo
        return Event.BounceType.SOFT
    if (raw.get("bounce") or {}).get("bounceType") == "Transient":  # Amazon SES
        return Event.BounceType.SOFT
    inner = (raw.get("msys") or {}).get("message_event") or raw  # SparkPost
    if str(inner.get("bounce_class", "")) in SPARKPOST_SOFT_CLASSES:
        return Event.BounceType.SOFT
    if raw.get("severity") == "temporary":  # Mailgun
        return Event.BounceType.SOFT
    if event.reject_reason == RejectReason.TIMED_OUT:
        return Event.BounceType.SOFT
    response = (event.mta_response or "").strip()
    if response[:1] == "4" or response[:3] in {"4.0", "4.2", "4.4", "4.7"}:
        return Event.BounceType.SOFT
    return Event.BounceType.HARD


def fact_from_anymail(event, esp_name: str) -> Fact | None:
    if event.event_type in IGNORED:
        return None
    kind = KINDS.get(event.event_type, K.UNKNOWN)
    esp = (esp_name or "esp").lower().replace(" ", "_")
    occurred = event.timestamp or timezone.now()
    raw = event.esp_event
    if not isinstance(raw, dict | list):
        raw = {"repr": repr(raw)[:2000]}
    return Fact(
        uid=esp_uid(
            esp,
            event.event_id,
            kind,
            event.message_id or "",
            event.recipient or "",
            occurred.isoformat(),
        ),
        kind=kind,
        occurred_at=occurred,
        message_id=str(event.message_id or "")[:255],
        recipient=(event.recipient or "")[:254],
        esp=esp,
        url=(event.click_url or "")[:2000],
        user_agent=(event.user_agent or "")[:500],
        method="GET",
        bounce_type=bounce_type(event) if kind == K.BOUNCED else "",
        reason=" ".join(
            filter(
                None, [event.reject_reason or "", event.description or "", event.mta_response or ""]
            )
        )[:300],
        payload=raw,
    )


@receiver(tracking, dispatch_uid="analytics.webhooks.on_tracking")
def on_tracking(sender, event, esp_name, **kwargs):
    fact = fact_from_anymail(event, esp_name)
    if fact is not None:
        ingest_facts([fact])
