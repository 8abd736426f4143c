"""The feedback loop: anymail's normalized tracking events from any ESP become Events.

anymail validates the request (WEBHOOK_SECRET basic auth, the ESP's own signature where it has
one) and parses the ESP's payload; this receiver maps the result. An unknown message id is
stored as an Event with no delivery, not an error; a database failure does raise, so the ESP
retries later (and the event's uid makes the retry count once).

**Buffered, like the tracking pixel.** A request's events become facts that ``TrackingGuard``
hands to ``analytics.buffer.send_facts`` once anymail has parsed them all: one RPUSH to Redis,
and the 200 only after Redis acknowledged it; the flusher (analytics.tasks.tracking_flush,
every TRACKING_FLUSH_SECONDS) ingests them in batches with the opens and clicks, so a burst of
10,000 webhook calls is a few transactions, not 10,000. A hard bounce suppresses its address
at the next flush, a few seconds later. Without Redis, or when Redis fails, the facts are
ingested before the answer, as before; when that fails too, the answer is 503 and the ESP
retries. Nothing unrecorded is ever answered 2xx.

Two things anymail leaves to us:

- **What a bounce was.** anymail calls every bounce "bounced"; each ESP says in its own words
  whether it was permanent, temporary, or a block of the sender, and most pass on the
  receiving server's reply. ``bounce_type`` reads both: the ESP's verdict, overruled when it
  or the reply says the *sender* was refused (``analytics.bounces``), since suppressing a
  subscriber for our DMARC failure would lose a good address and fix nothing.
- **Bad requests.** anymail lets a body it cannot parse raise whatever it raises (a 500, and
  an ESP retrying for ever). ``TrackingGuard``, put in front of every tracking view by
  ``analytics.webhook_urls``, answers 400 instead, stores nothing, and refuses bodies over
  WEBHOOK_MAX_BYTES unread. It guards the parsing only: whatever this module's receiver
  raises (the database is down) still propagates, so the ESP retries.
"""

import logging
import math
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from anymail.exceptions import (
    AnymailAPIError,
    AnymailConfigurationError,
    AnymailImproperlyInstalled,
    AnymailRequestsAPIError,
)
from anymail.signals import EventType, RejectReason, tracking
from django.conf import settings
from django.dispatch import receiver
from django.http import HttpResponse, HttpResponseBadRequest
from django.utils import timezone

from . import buffer
from .bounces import bounce_kind
from .ingest import Fact, esp_uid, ingest_facts
from .models import Event

log = logging.getLogger(__name__)

K = Event.Kind
B = Event.BounceType

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


# --- what a bounce was, in each ESP's words ---------------------------------------------------


def _get(value, *path):
    """value[path[0]][path[1]]..., or None where a level is missing or not a mapping."""
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _str(value) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


# SparkPost's bounce classes (Mandrill's bgtools codes are the same Message Systems classes):
# https://support.sparkpost.com/docs/deliverability/bounce-classification-codes
# Looked up by a webhook's number, which may be missing (None).
SPARKPOST_CLASSES: dict[int | None, str] = {
    **dict.fromkeys([10, 25, 30, 90], B.HARD),  # invalid recipient, admin failure, no RCPT
    **dict.fromkeys([20, 21, 22, 23, 24, 40, 60, 70, 100], B.SOFT),
    # Mail block, spam block, spam content, prohibited attachment, relaying denied: all
    # refusals of the sender or its content by the receiver.
    **dict.fromkeys([50, 51, 52, 53, 54], B.SENDER),
}
MAILJET_SENDER_ERRORS = {"sender blocked", "content blocked", "policy issue"}
UNISENDER_GO_STATUSES = {
    **dict.fromkeys(
        [
            "err_user_unknown",
            "err_user_inactive",
            "err_mailbox_discarded",
            "err_domain_inactive",
            "err_destination_misconfigured",
        ],
        B.HARD,
    ),
    **dict.fromkeys(
        ["err_mailbox_full", "err_too_large", "err_will_retry", "err_unreachable"], B.SOFT
    ),
    **dict.fromkeys(["err_spam_rejected", "err_blacklisted"], B.SENDER),
}
# Amazon SES (and Resend, which sends through it): bounceType / bounceSubType.
SES_SENDER_SUBTYPES = {"ContentRejected", "AttachmentRejected"}
# Postmark files receivers' blocks under bounce Types that anymail calls "rejected".
POSTMARK_TYPES = {
    "HardBounce": B.HARD,
    "BadEmailAddress": B.HARD,
    "SoftBounce": B.SOFT,
    "Blocked": B.SENDER,  # "ISP blocked the message" (content, reputation, block lists)
    "DMARCPolicy": B.SENDER,
    "VirusNotification": B.SENDER,
}
SENDGRID_CLASSIFICATIONS = {
    "Invalid Address": B.HARD,
    "Mailbox Unavailable": B.HARD,
    "Technical": B.SOFT,
    "Content": B.SENDER,
    "Reputation": B.SENDER,
    "Frequency or Volume": B.SENDER,
}


def _ses_like(bounce: dict) -> str | None:
    kind = _str(bounce.get("bounceType") or bounce.get("type"))
    subtype = _str(bounce.get("bounceSubType") or bounce.get("subType"))
    if kind == "Undetermined" or subtype in SES_SENDER_SUBTYPES:
        return B.SENDER
    return {"Permanent": B.HARD, "Transient": B.SOFT}.get(kind)


def esp_bounce_facts(esp: str, raw, event) -> tuple[str | None, int | None, str, str]:
    """(the ESP's own verdict or None, SMTP code, enhanced status, reply text) of a bounce."""
    recipient = _str(event.recipient).lower()
    reply = _str(event.mta_response)
    if esp == "amazon_ses":
        bounce = _dict(_get(raw, "bounce"))
        recipients = bounce.get("bouncedRecipients")
        mine = next(
            (
                r
                for r in (recipients if isinstance(recipients, list) else [])
                if isinstance(r, dict) and _str(r.get("emailAddress")).lower() == recipient
            ),
            {},
        )
        return _ses_like(bounce), None, _str(mine.get("status")), reply
    if esp == "resend":
        bounce = _dict(_get(raw, "data", "bounce"))
        message = _str(bounce.get("message"))
        verdict = _ses_like(bounce)
        if verdict is None and "inbox was full" in message:
            verdict = B.SOFT
        elif verdict is None and ("hard bounce" in message or "suppressed" in message):
            verdict = B.HARD
        return verdict, None, "", message
    if esp == "postmark":
        return POSTMARK_TYPES.get(_str(_get(raw, "Type"))), None, "", reply
    if esp in {"brevo", "sendinblue"}:
        brevo = {"soft_bounce": B.SOFT, "hard_bounce": B.HARD, "invalid_email": B.HARD}
        return brevo.get(_str(_get(raw, "event"))), None, "", reply
    if esp == "mailgun":
        data = _get(raw, "event-data")
        if isinstance(data, dict):  # the JSON webhooks
            status = _dict(data.get("delivery-status"))
            reason = _str(data.get("reason"))
            if reason == "espblock":
                verdict = B.SENDER
            elif reason == "old":
                verdict = None  # retried until too old: the last reply says why
            else:
                verdict = {"permanent": B.HARD}.get(_str(data.get("severity")))
            text = " ".join(filter(None, [reply, _str(status.get("description"))]))
            return verdict, _int(status.get("code")), "", text
        return None, _int(_get(raw, "code")), "", reply  # the legacy form posts
    if esp == "mailjet":
        error = _str(_get(raw, "error")).lower()
        if _get(raw, "error_related_to") == "spam" or error in MAILJET_SENDER_ERRORS:
            verdict = B.SENDER
        else:
            hard = _get(raw, "hard_bounce")
            verdict = None if hard is None else B.HARD if hard is True else B.SOFT
        return verdict, None, "", " ".join(filter(None, [reply, _str(_get(raw, "comment"))]))
    if esp == "mailersend":
        verdict = {"hard_bounced": B.HARD, "soft_bounced": B.SOFT}.get(
            _str(_get(raw, "data", "type"))
        )
        morph = _dict(_get(raw, "data", "morph"))
        text = _str(_get(morph, "readable_reason")) or _str(_get(morph, "reason"))
        return verdict, None, "", text
    if esp == "mailtrap":
        category = _str(_get(raw, "bounce_category")).lower()
        verdict = None
        if any(word in category for word in ("spam", "content", "policy", "block", "reput")):
            verdict = B.SENDER
        elif category in {"hard", "badmailbox", "invalid", "dns"}:
            verdict = B.HARD
        return verdict, _int(_get(raw, "response_code")), "", reply
    if esp == "mandrill":
        msg = _dict(_get(raw, "msg"))
        verdict = SPARKPOST_CLASSES.get(_int(_get(msg, "bgtools_code")))
        if verdict != B.SENDER:
            description = _str(_get(msg, "bounce_description"))
            if any(word in description for word in ("spam", "policy", "content", "block")):
                verdict = B.SENDER
            else:
                verdict = {"hard_bounce": B.HARD, "soft_bounce": B.SOFT}.get(
                    _str(_get(raw, "event")), verdict
                )
        return verdict, None, "", reply
    if esp == "sparkpost":
        inner = _dict(_get(raw, "msys", "message_event"))
        verdict = SPARKPOST_CLASSES.get(_int(_get(inner, "bounce_class")))
        return verdict, _int(_get(inner, "error_code")), "", reply
    if esp == "sendgrid":
        verdict = SENDGRID_CLASSIFICATIONS.get(_str(_get(raw, "bounce_classification")))
        if verdict is None:
            # SendGrid's "blocked" bounces are the receiver refusing for now; the reply says
            # whether it was us.
            verdict = B.SOFT if _get(raw, "type") == "blocked" else B.HARD
        return verdict, None, _str(_get(raw, "status")), reply
    if esp == "unisender_go":
        delivery_status = _str(_get(raw, "delivery_info", "delivery_status"))
        return UNISENDER_GO_STATUSES.get(delivery_status), None, "", reply
    return None, None, "", reply  # Postal, and any ESP anymail adds: the reply alone


def _is_bounce(event, esp: str, raw: dict) -> bool:
    if event.event_type == EventType.BOUNCED:
        return True
    if esp == "postmark":
        # anymail reports Postmark's "Blocked", "DMARCPolicy" and "BadEmailAddress" bounces
        # as rejections (as if Postmark had not sent them): the receiver refused them.
        return _get(raw, "RecordType") == "Bounce" and _str(_get(raw, "Type")) in POSTMARK_TYPES
    if esp == "postal":
        # anymail's "failed": the receiving server refused the message for good.
        return _get(raw, "payload", "status") == "HardFail"
    return False


def bounce_type(event, esp: str) -> str | None:
    """hard / soft / sender if this event is a receiving server's refusal, else None.

    The ESP's verdict stands, except that a block of the sender, said by the ESP or by the
    receiver's reply, is always filed as such; with no verdict, the reply decides (and a
    bounce nobody explains is hard, as it always was).
    """
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    if not _is_bounce(event, esp, raw):
        return None
    verdict, code, enhanced, text = esp_bounce_facts(esp, raw, event)
    reply = bounce_kind(smtp_code=code, enhanced=enhanced, text=text) if (code or text) else None
    if B.SENDER in (verdict, reply):
        return B.SENDER
    if event.reject_reason == RejectReason.TIMED_OUT and verdict is None:
        return B.SOFT
    return verdict or reply or B.HARD


# --- from an anymail event to a Fact ------------------------------------------------------------


def _clean(value):
    """The payload as PostgreSQL can store it: no NUL characters (text and jsonb refuse
    them), anything JSON cannot say turned into text."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # NaN and Infinity parse as JSON, but jsonb refuses them
    if value is None or isinstance(value, bool | int | float):
        return value
    return _clean(repr(value)[:2000])


def _text(value, limit: int) -> str:
    return _str(value).replace("\x00", "")[:limit]


def _occurred_at(value) -> tuple[datetime, bool]:
    """The ESP's timestamp, aware; the receipt time when it has none or an impossible one
    (the rollups do date arithmetic on it). And whether it was the ESP's: a replay then
    carries the same one (Fact.stable_time)."""
    now = timezone.now()
    if not isinstance(value, datetime):
        return now, False
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    if not datetime(2000, 1, 1, tzinfo=UTC) <= value <= now + timedelta(days=1):
        return now, False
    return value, True


def fact_from_anymail(event, esp_name: str) -> Fact | None:
    if event.event_type in IGNORED:
        return None
    esp = _str(esp_name or "esp").lower().replace(" ", "_")
    bounce = bounce_type(event, esp)
    kind = K.BOUNCED if bounce else KINDS.get(event.event_type, K.UNKNOWN)
    occurred, own_time = _occurred_at(event.timestamp)
    message_id = _text(event.message_id, 255)
    recipient = _text(event.recipient, 254)
    raw = event.esp_event
    if not isinstance(raw, dict | list):
        raw = {"repr": repr(raw)[:2000]}
    return Fact(
        uid=esp_uid(
            esp, _text(event.event_id, 200), kind, message_id, recipient, occurred.isoformat()
        ),
        kind=kind,
        occurred_at=occurred,
        stable_time=own_time,
        message_id=message_id,
        recipient=recipient,
        esp=esp,
        url=_text(event.click_url, 2000),
        user_agent=_text(event.user_agent, 500),
        method="GET",
        bounce_type=bounce or "",
        reason=_text(
            " ".join(
                filter(
                    None,
                    [_str(event.reject_reason), _str(event.description), _str(event.mta_response)],
                )
            ),
            300,
        ),
        payload=_clean(raw),
    )


# The facts of the request being answered by a TrackingGuard view, recorded together when
# anymail has sent them all; None elsewhere.
_request_facts: ContextVar[list[Fact] | None] = ContextVar("request_facts", default=None)


@receiver(tracking, dispatch_uid="analytics.webhooks.on_tracking")
def on_tracking(sender, event, esp_name, **kwargs):
    fact = fact_from_anymail(event, esp_name)
    if fact is None:
        return
    collected = _request_facts.get()
    if collected is not None:
        collected.append(fact)
    else:  # the signal sent outside our views: recorded at once
        ingest_facts([fact])


# --- the guard in front of anymail's tracking views ---------------------------------------------


class Refused(Exception):
    """A request this endpoint cannot take as it is: answered 400, nothing stored."""


# What anymail's parsers raise on a body that is not the ESP's format: JSON that does not
# parse (ValueError), null or a list where an object belongs (TypeError, AttributeError), a
# missing field (KeyError, IndexError), an absurd timestamp (OverflowError), nesting deep
# enough to exhaust the stack, and anymail's own complaints (SES's "Malformed SNS message").
MALFORMED = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    OverflowError,
    RecursionError,
    AssertionError,
)


if TYPE_CHECKING:
    from anymail.webhooks.base import AnymailBaseWebhookView as _AnymailView
else:
    _AnymailView = object


class ConfigurationGuard(_AnymailView):
    """Mixed in front of every anymail webhook view (``analytics.webhook_urls``): an ESP whose
    settings are missing answers 503 with what is missing, not a 500 (anymail raises its
    configuration error when the view is made, for any request, a GET included)."""

    def __init__(self, **kwargs):
        self.missing_setting = None
        try:
            super().__init__(**kwargs)
        except AnymailImproperlyInstalled:
            raise
        except AnymailConfigurationError as exc:
            # This ESP's key is not configured: nothing its webhook posts can be checked.
            self.missing_setting = exc

    def not_configured(self) -> HttpResponse:
        log.error("%s webhook refused: %s", self.esp_name, self.missing_setting)
        return HttpResponse(
            f"The {self.esp_name} webhook is not configured on this server.",
            status=503,
            content_type="text/plain",
        )

    def post(self, request, *args, **kwargs):
        if self.missing_setting is not None:
            return self.not_configured()
        return super().post(request, *args, **kwargs)


class TrackingGuard(ConfigurationGuard):
    """Mixed in front of an anymail tracking view (``analytics.webhook_urls``).

    Only the request's validation and parsing are answered 400; the request's facts are
    recorded after anymail sent its signals (``buffer.send_facts``), and a failure to record
    them answers 503, so the ESP retries.
    """

    # The Mandrill endpoint also carries inbound mail: Django's upload limit is its limit.
    limit_body = True

    def post(self, request, *args, **kwargs):
        if self.missing_setting is not None:
            return self.not_configured()
        collected: list[Fact] = []
        token = _request_facts.set(collected)
        try:
            response = super().post(request, *args, **kwargs)
        except Refused as exc:
            log.warning("%s webhook refused: %s", self.esp_name, exc)
            return HttpResponseBadRequest(
                f"Not a {self.esp_name} tracking webhook: {exc}", content_type="text/plain"
            )
        finally:
            _request_facts.reset(token)
        if not collected or not 200 <= response.status_code < 300:
            return response
        try:
            buffer.send_facts(collected)
        except Exception:
            # Neither buffered nor written (the database is down too): no 2xx, or the ESP
            # would never send these events again.
            log.exception("%s webhook: %d event(s) not recorded", self.esp_name, len(collected))
            return HttpResponse(
                "The events could not be recorded; please retry.",
                status=503,
                content_type="text/plain",
                headers={"Retry-After": "60"},
            )
        return response

    def run_validators(self, request):
        if self.limit_body:
            length = _int(request.META.get("CONTENT_LENGTH")) or 0
            if length > settings.WEBHOOK_MAX_BYTES:
                raise Refused(
                    f"a body of {length} bytes (the limit is {settings.WEBHOOK_MAX_BYTES})"
                )
        try:
            super().run_validators(request)
        except AnymailRequestsAPIError:
            raise
        except (*MALFORMED, AnymailAPIError) as exc:
            raise Refused(_explain(exc)) from exc

    def parse_events(self, request):
        try:
            events = super().parse_events(request)
        except (AnymailImproperlyInstalled, AnymailRequestsAPIError):
            raise
        except (*MALFORMED, AnymailAPIError, AnymailConfigurationError) as exc:
            # (A configuration error here is the ESP's: inbound mail posted to tracking.)
            raise Refused(_explain(exc)) from exc
        # An event naming neither a message nor a recipient can never be matched to
        # anything: junk that happened to parse ({} to Postmark), not an event to keep.
        kept = [
            e for e in events if e.event_type in IGNORED or _str(e.message_id) or _str(e.recipient)
        ]
        if len(kept) < len(events):
            log.warning(
                "%s webhook: dropped %d event(s) naming no message and no recipient",
                self.esp_name,
                len(events) - len(kept),
            )
            if not kept:
                raise Refused("no event names a message or a recipient")
        return kept


def _explain(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
