"""Bounces and complaints that come back by mail, for senders on their own SMTP relay.

An ESP posts a webhook; an MTA mails a report to the envelope sender. Each campaign message
leaves with a VERP envelope sender, ``b+<delivery token>@<bounce domain>``, so the report
names its delivery even when the returned original is cut off. This module reads one such
message and turns it into the same ``Fact``s the ESP webhooks produce, so the ledger,
suppressions, soft-bounce counting, reputation rates and auto-pause treat both alike:

- a delivery status notification (RFC 3464, ``multipart/report;
  report-type=delivery-status``): per recipient, Action, Status and Diagnostic-Code; failed
  → a bounce filed hard, soft or sender-caused by ``analytics.bounces.bounce_kind`` (the
  webhooks' classifier), delayed → a deferral;
- a feedback-loop complaint (ARF, RFC 5965, ``report-type=feedback-report``, as sent by
  Microsoft JMRP, Yahoo CFL and the other providers' FBLs) → a complaint; the delivery is found
  through the VERP address, our X-NFM-Delivery header or the Message-ID of the returned
  original (FBLs mail the address registered with them, not the envelope sender);
- an auto-reply (out of office, RFC 3834 ``Auto-Submitted``) is no bounce: noted, no fact;
- anything else that looks like a bounce is handed to flufl.bounce, which knows the odd
  shapes of older MTAs, and matched by the VERP address.

A message none of these can read is ``unparseable``: the mailbox keeps it and the page lists
it, it is never dropped.
"""

from __future__ import annotations

import email
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import Message
from email.utils import collapse_rfc2231_value, getaddresses, parsedate_to_datetime

from django.conf import settings
from django.utils import timezone

from .bounces import bounce_kind
from .ingest import Fact

DSN, ARF, AUTO_REPLY, LEGACY, UNPARSEABLE = "dsn", "arf", "auto-reply", "legacy", "unparseable"

_VERP = re.compile(r"\bb\+([0-9a-z]+)\.([0-9a-f]{12})@", re.I)
_DELIVERY_HEADER = re.compile(r"^X-NFM-Delivery:\s*(\d+)\s*$", re.I | re.M)
_MESSAGE_ID_HEADER = re.compile(r"^Message-ID:\s*(<[^>\s]+>)", re.I | re.M)
_AUTO_SUBJECT = re.compile(
    r"^(auto(matic)?[ -]?(reply|response)|out of (the )?office|absence|abwesenheit|"
    r"r[ée]ponse automatique|vacation)",
    re.I,
)


# --------------------------------------------------------------------------------------------
# VERP addresses


def _mac(delivery_id: int) -> str:
    return hmac.new(
        settings.SECRET_KEY.encode(), f"verp:{delivery_id}".encode(), hashlib.sha256
    ).hexdigest()[:12]


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def verp_address(delivery_id: int, bounce_domain: str) -> str:
    """The envelope sender of one delivery: lower case only (some MTAs fold local parts)."""
    return f"b+{_b36(delivery_id)}.{_mac(delivery_id)}@{bounce_domain}"


def verp_delivery(text: str) -> int | None:
    """The delivery a VERP address in ``text`` names, if its signature holds."""
    for match in _VERP.finditer(text or ""):
        try:
            delivery_id = int(match.group(1), 36)
        except ValueError:
            continue
        if hmac.compare_digest(_mac(delivery_id), match.group(2).lower()):
            return delivery_id
    return None


# --------------------------------------------------------------------------------------------
# Reading one message


@dataclass
class Report:
    kind: str
    facts: list[Fact] = field(default_factory=list)
    note: str = ""


def parse(raw: bytes, *, uid: str) -> Report:
    """``uid`` identifies the mailbox message (e.g. ``imap:<uidvalidity>:<uid>``): a report
    read twice files its facts once."""
    try:
        message = email.message_from_bytes(raw, policy=policy.compat32)
    except Exception as exc:  # hostile bytes: kept and listed as unparseable, never lost
        return Report(UNPARSEABLE, note=f"Not a readable message: {exc}")
    when, own_time = _date(message)
    content_type = message.get_content_type()
    report_type = message.get_param("report-type") or ""
    if isinstance(report_type, tuple):  # RFC 2231 encoded
        report_type = collapse_rfc2231_value(report_type)
    report_type = report_type.lower()
    if content_type == "multipart/report" and report_type == "feedback-report":
        report = _arf(message, uid=uid, when=when)
    elif content_type == "multipart/report" and report_type == "delivery-status":
        report = _dsn(message, raw, uid=uid, when=when)
    elif _is_auto_reply(message):
        return Report(AUTO_REPLY, note="An automatic reply (out of office): not a bounce.")
    else:
        report = _legacy(message, raw, uid=uid, when=when)
    for fact in report.facts:
        fact.stable_time = own_time
    return report


def _date(message: Message) -> tuple[datetime, bool]:
    """The report's Date, never in the future, and whether it was the report's own (then a
    report read twice carries the same time: Fact.stable_time)."""
    now = timezone.now()
    try:
        parsed = parsedate_to_datetime(message.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return now, False
    if parsed is None:
        return now, False
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return (parsed, True) if parsed <= now else (now, False)


def _is_auto_reply(message: Message) -> bool:
    auto = (message.get("Auto-Submitted") or "").lower()
    if auto.startswith("auto-replied"):
        return True
    if any(message.get(h) for h in ("X-Autoreply", "X-Autorespond")):
        return True
    if (message.get("Precedence") or "").lower() == "auto_reply":
        return True
    return bool(_AUTO_SUBJECT.match(str(message.get("Subject") or "").strip()))


def _parts(message: Message) -> list[Message]:
    return [p for p in message.walk() if p is not message]


def _original_text(message: Message) -> str:
    """The returned original's headers (message/rfc822 or text/rfc822-headers), as text."""
    for part in _parts(message):
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, Message):
                return "".join(f"{k}: {v}\n" for k, v in inner.items())
        if ctype == "text/rfc822-headers":
            payload = part.get_payload(decode=True) or b""
            return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    return ""


def _locate(message: Message, original: str) -> tuple[int | None, str]:
    """(delivery id, message id) from the VERP address or the returned original."""
    envelope = " ".join(
        str(message.get(h) or "") for h in ("To", "Delivered-To", "X-Original-To", "Envelope-To")
    )
    delivery_id = verp_delivery(envelope) or verp_delivery(original)
    if delivery_id is None:
        found = _DELIVERY_HEADER.search(original)
        delivery_id = int(found.group(1)) if found else None
    found_id = _MESSAGE_ID_HEADER.search(original)
    return delivery_id, found_id.group(1) if found_id else ""


def _fields(block: Message) -> dict[str, str]:
    return {k.lower(): " ".join(str(v).split()) for k, v in block.items()}


def _dsn(message: Message, raw: bytes, *, uid: str, when) -> Report:
    status_part = next(
        (p for p in _parts(message) if p.get_content_type() == "message/delivery-status"), None
    )
    if status_part is None:
        return _legacy(message, raw, uid=uid, when=when)
    blocks = status_part.get_payload()
    if not isinstance(blocks, list):
        return Report(UNPARSEABLE, note="A delivery report without its status fields.")
    original = _original_text(message)
    delivery_id, message_id = _locate(message, original)
    facts = []
    for index, block in enumerate(blocks[1:] if len(blocks) > 1 else blocks):
        f = _fields(block)
        action = f.get("action", "").lower()
        if action not in {"failed", "delayed"}:
            continue  # delivered, relayed, expanded: nothing to hold against anyone
        # After alias expansion the final recipient may not be the address we sent to: when
        # the VERP address names the delivery, the ledger's address is the one that counts.
        recipient = (
            ""
            if delivery_id
            else _address(f.get("original-recipient") or f.get("final-recipient") or "")
        )
        status = f.get("status", "")
        diagnostic = f.get("diagnostic-code", "").partition(";")[2].strip() or f.get(
            "diagnostic-code", ""
        )
        reason = f"{status} {diagnostic}".strip()[:300]
        if action == "delayed":
            facts.append(
                Fact(
                    uid=f"{uid}:{index}:deferred",
                    kind="deferred",
                    occurred_at=when,
                    delivery_id=delivery_id,
                    message_id=message_id,
                    recipient=recipient,
                    esp="smtp-dsn",
                    reason=reason,
                )
            )
            continue
        code = None
        found = re.search(r"\b([45]\d\d)\b", diagnostic)
        if found:
            code = int(found.group(1))
        facts.append(
            Fact(
                uid=f"{uid}:{index}:bounced",
                kind="bounced",
                occurred_at=when,
                delivery_id=delivery_id,
                message_id=message_id,
                recipient=recipient,
                esp="smtp-dsn",
                bounce_type=bounce_kind(smtp_code=code, enhanced=status, text=diagnostic),
                reason=reason,
            )
        )
    if not facts:
        return Report(DSN, note="A delivery report with no failure in it.")
    if delivery_id is None and not message_id:
        return Report(UNPARSEABLE, note="A bounce for a message this app cannot identify.")
    return Report(DSN, facts=facts)


def _arf(message: Message, *, uid: str, when) -> Report:
    feedback = next(
        (p for p in _parts(message) if p.get_content_type() == "message/feedback-report"), None
    )
    fields: dict[str, str] = {}
    if feedback is not None:
        payload = feedback.get_payload()
        if isinstance(payload, list):  # parsed as header blocks
            for block in payload:
                if isinstance(block, Message):
                    fields.update(_fields(block))
        else:
            text = payload if isinstance(payload, str) else ""
            fields = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in text.splitlines())
                if v
            }
    original = _original_text(message)
    delivery_id, message_id = _locate(message, original)
    if delivery_id is None and not message_id:
        return Report(UNPARSEABLE, note="A complaint about a message this app cannot identify.")
    feedback_type = fields.get("feedback-type", "abuse").lower()
    if feedback_type not in {"abuse", "fraud", "virus", "other", "not-spam"}:
        feedback_type = "abuse"
    if feedback_type == "not-spam":
        return Report(ARF, note="A 'not spam' report: nothing to do.")
    # FBLs redact or rewrite the recipient: the ledger's address is the one to suppress.
    recipient = "" if delivery_id else _address(fields.get("original-rcpt-to", ""))
    return Report(
        ARF,
        facts=[
            Fact(
                uid=f"{uid}:complaint",
                kind="complained",
                occurred_at=when,
                delivery_id=delivery_id,
                message_id=message_id,
                recipient=recipient,
                esp="smtp-fbl",
                reason=f"Feedback loop ({fields.get('user-agent', 'ARF')}): {feedback_type}"[:300],
            )
        ],
    )


def _legacy(message: Message, raw: bytes, *, uid: str, when) -> Report:
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(message)
    except Exception as exc:  # third-party heuristics on hostile input: kept, never lost
        return Report(UNPARSEABLE, note=f"Bounce detectors failed: {exc.__class__.__name__}")
    if not (temporary or permanent):
        return Report(UNPARSEABLE, note="Neither a bounce nor a complaint this app can read.")
    text = raw.decode("utf-8", errors="replace")
    delivery_id, message_id = _locate(message, text)
    if delivery_id is None and not message_id:
        return Report(UNPARSEABLE, note="A bounce for a message this app cannot identify.")
    facts = [
        Fact(
            uid=f"{uid}:{n}:{'bounced' if hard else 'deferred'}",
            kind="bounced" if hard else "deferred",
            occurred_at=when,
            delivery_id=delivery_id,
            message_id=message_id,
            recipient=address.decode(errors="replace"),
            esp="smtp-dsn",
            bounce_type="hard" if hard else "",
            reason="Bounce (non-standard report)",
        )
        for n, (address, hard) in enumerate(
            [(a, True) for a in sorted(permanent)] + [(a, False) for a in sorted(temporary)]
        )
    ]
    return Report(LEGACY, facts=facts)


def _address(value: str) -> str:
    """'rfc822; user@example.org' -> 'user@example.org'."""
    value = value.partition(";")[2] if ";" in value else value
    addresses = getaddresses([value.strip()])
    return (addresses[0][1] if addresses else value).strip().lower()
