"""Bulk-sender readiness of a sending domain, judged on a real message.

Since February 2024 Gmail and Yahoo, and since May 2025 Outlook.com, junk or refuse bulk mail
that misses their requirements. The DNS checks (analytics.dns_checks) say what the records
promise; they cannot say what the mail this app sends looks like when it arrives: a relay may
break the signature, the envelope sender may sit on an unaligned domain, the unsubscribe URL
may answer a POST with a login page. So this check sends a seed message through the domain's
connection, built and handed off by the campaign code itself (``MessageFactory`` and the
pipeline's ``Transport``, not a copy of them), so it carries the same From, DKIM signature,
VERP Return-Path and List-Unsubscribe headers as a campaign; reads it back from a mailbox of
the sender's own over IMAP (READINESS_SEED_ADDRESS, READINESS_IMAP_URL); and judges what
arrived the way a receiver does: dkimpy verifies the signature against the published key.

Each requirement is pass, fail or cannot-check (``unknown``): no DNS answer, or nothing to
judge on, is never reported as a failure. Complaint rates come from the feedback loops and
ESP webhooks this app reads; Gmail has no per-message feedback loop, so Gmail's own rate is
only in Google Postmaster Tools, and the page says so.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import ssl
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.messages import MessageFactory
from campaigns.models import Campaign, SendingConnection
from campaigns.pipeline import Transport
from campaigns.smtp_connect import SmtpSettings
from templates_app.fields import recipient_context
from templates_app.models import TemplateVersion

from .bounce_mailbox import MailboxError, MailboxSettings
from .bounce_mailbox import _connect as mailbox_connect
from .models import ReadinessRun, SendingDomain
from .readiness_judge import seed_requirements

log = logging.getLogger(__name__)
SEED_HTML = (
    "<html><body><p>This is a seed message from the bulk-sender readiness check of "
    "{domain}. It went to your own seed mailbox, the app reads it back and deletes it: "
    "nothing to do.</p></body></html>"
)
SEED_TEXT = (
    "This is a seed message from the bulk-sender readiness check of {domain}. It went to "
    "your own seed mailbox, the app reads it back and deletes it: nothing to do.\n"
)


class ReadinessError(Exception):
    """The check could not run (not configured, the seed could not be sent or never came)."""


@dataclass
class SeedSent:
    token: str
    message_id: str
    from_email: str
    envelope_sender: str
    connection: SendingConnection | None
    smtp: SmtpSettings | None  # None: an ESP's API
    tls_version: str = ""  # what this app's own SMTP session negotiated


# --------------------------------------------------------------------------------------------
# Starting a run


def readiness_configured() -> bool:
    return bool(settings.READINESS_SEED_ADDRESS and settings.READINESS_IMAP_URL)


def run_stale_after() -> timedelta:
    return timedelta(seconds=settings.READINESS_WAIT_SECONDS + 300)


def readiness_run_start(*, domain: SendingDomain, user=None) -> ReadinessRun:
    """A new run, handed to a worker once committed; a run still under way is returned
    instead of sending a second seed message."""
    if not readiness_configured():
        raise ReadinessError(
            "Set READINESS_SEED_ADDRESS and READINESS_IMAP_URL (a mailbox of yours the app "
            "can read) to run the readiness check."
        )
    from .tasks import readiness_check

    with transaction.atomic():
        SendingDomain.objects.select_for_update().filter(pk=domain.pk).first()
        running = domain.readiness_runs.filter(status=ReadinessRun.Status.RUNNING).first()
        if running is not None:
            if running.started_at > timezone.now() - run_stale_after():
                return running
            running.status = ReadinessRun.Status.ERROR
            running.error = "No worker finished this run (is the Celery worker running?)."
            running.finished_at = timezone.now()
            running.save(update_fields=["status", "error", "finished_at"])
        run = ReadinessRun.objects.create(domain=domain, token=uuid.uuid4().hex, started_by=user)
        transaction.on_commit(lambda: readiness_check.delay(run.pk))
    return run


def readiness_run_complete(*, run: ReadinessRun) -> ReadinessRun:
    """Send the seed, read it back, judge it, and record the outcome on ``run``."""
    domain = run.domain
    try:
        sent = readiness_seed_send(domain=domain, token=run.token)
        run.connection_name = sent.connection.name if sent.connection else "default (EMAIL_HOST)"
        run.from_email, run.envelope_sender = sent.from_email, sent.envelope_sender
        raw = readiness_seed_read(token=run.token, wait=settings.READINESS_WAIT_SECONDS)
        if raw is None:
            raise ReadinessError(
                f"The seed message did not reach {settings.READINESS_SEED_ADDRESS} within "
                f"{settings.READINESS_WAIT_SECONDS} s (look in its spam folder, and at the "
                "relay's log)."
            )
        requirements = seed_requirements(domain=domain, raw=raw, sent=sent)
    except ReadinessError as exc:
        run.status, run.error = ReadinessRun.Status.ERROR, str(exc)[:1000]
    except Exception as exc:  # a worker must record why, not leave the page spinning
        log.exception("readiness run %s of %s failed", run.pk, domain)
        run.status = ReadinessRun.Status.ERROR
        run.error = f"The check failed: {exc.__class__.__name__}: {exc}"[:1000]
    else:
        run.status = ReadinessRun.Status.DONE
        run.results = [asdict(r) for r in requirements]
        run.seed_headers = raw.partition(b"\r\n\r\n")[0].decode("utf-8", "replace")[:20_000]
    run.finished_at = timezone.now()
    run.save()
    return run


# --------------------------------------------------------------------------------------------
# The seed message


class _SeedFactory(MessageFactory):
    """The campaign factory. The seed has no delivery, so its envelope sender is a VERP-shaped
    address on the bounce domain a campaign would use, naming the run instead (a bounce of it
    names no delivery and files nothing)."""

    seed_token = ""

    def envelope_sender(self, message) -> str:
        if self.bounce_domain:
            return f"b+seed.{self.seed_token}@{self.bounce_domain}"
        return super().envelope_sender(message)


def _connection_of(domain: SendingDomain) -> SendingConnection | None:
    return (
        SendingConnection.objects.filter(sending_domain__iexact=domain.domain)
        .order_by("pk")
        .first()
    )


def _from_email(domain: SendingDomain) -> str:
    """The From address campaigns of this domain use lately, else news@domain."""
    recent = (
        Campaign.objects.filter(from_email__iendswith="@" + domain.domain)
        .order_by("-created_at")
        .values_list("from_email", flat=True)
        .first()
    )
    if recent:
        return recent
    default = (settings.DEFAULT_FROM_EMAIL or "").rpartition("<")[2].strip(">").strip()
    if default.lower().endswith("@" + domain.domain.lower()):
        return default
    return f"news@{domain.domain}"


def readiness_seed_send(*, domain: SendingDomain, token: str) -> SeedSent:
    """Send the seed message to READINESS_SEED_ADDRESS through the domain's connection."""
    connection = _connection_of(domain)
    from_email = _from_email(domain)
    version = TemplateVersion(
        number=1,
        # The token in the subject too: some ESPs replace the Message-ID.
        subject=f"Readiness check of {domain.domain} ({token[:12]})",
        html_body=SEED_HTML.format(domain=domain.domain),
        text_body=SEED_TEXT.format(domain=domain.domain),
    )
    campaign = Campaign(
        name=f"Readiness seed of {domain.domain}",
        template_version=version,
        from_email=from_email,
        connection=connection,
        track_links=False,
        track_opens=False,
    )
    factory = _SeedFactory(campaign, test_send=True)
    factory.seed_token = token
    to = settings.READINESS_SEED_ADDRESS
    built = factory.build(
        delivery_id=None, subscriber_id=0, email=to, recipient=recipient_context(email=to)
    )
    built.message_id = f"<readiness.{token}@{factory.domain}>"
    built.headers["Message-ID"] = built.message_id
    transport = Transport(campaign, factory)
    if transport.sandbox:
        raise ReadinessError(
            f"The connection {connection} is in test mode: it sends nothing, so there is "
            "nothing to check."
        )
    tls_version = ""
    try:
        transport.send(built)
        sock = transport.smtp.sock if transport.smtp is not None else None
        if isinstance(sock, ssl.SSLSocket):
            tls_version = sock.version() or "TLS"
    except ReadinessError:
        raise
    except Exception as exc:  # any backend's error becomes the run's stated reason
        raise ReadinessError(
            f"The seed message could not be sent: {exc.__class__.__name__}: {exc}"
        ) from exc
    finally:
        transport.close()
    return SeedSent(
        token=token,
        message_id=built.message_id,
        from_email=from_email,
        # Over an ESP's API the ESP picks the envelope sender: the Return-Path that arrives says.
        envelope_sender=factory.envelope_sender(built) if transport.is_smtp else "",
        connection=connection,
        smtp=SmtpSettings.of(connection) if transport.is_smtp else None,
        tls_version=tls_version,
    )


def readiness_seed_read(*, token: str, wait: float, every: float = 2.0) -> bytes | None:
    """The seed message as the seed mailbox holds it, found by its Message-ID; deleted from
    the mailbox once read. None when it has not arrived within ``wait`` seconds."""
    try:
        s = MailboxSettings.parse(settings.READINESS_IMAP_URL)
    except MailboxError as exc:
        raise ReadinessError(str(exc).replace("BOUNCE_IMAP_URL", "READINESS_IMAP_URL")) from exc
    deadline = time.monotonic() + wait
    try:
        imap = mailbox_connect(s)
    except (imaplib.IMAP4.error, OSError) as exc:
        raise ReadinessError(f"Cannot read the seed mailbox {s.key}: {exc}") from exc
    folder = '"' + s.folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
    try:
        while True:
            typ, data = imap.select(folder)
            if typ != "OK":
                raise ReadinessError(f"Cannot open folder {s.folder} of the seed mailbox.")
            typ, data = imap.uid(
                "SEARCH",
                "OR",
                "HEADER",
                "Message-ID",
                f"readiness.{token}",
                "SUBJECT",
                token[:12],
            )
            # UIDs are ASCII digits; imaplib takes its arguments as str.
            uids = (data[0] or b"").decode("ascii").split() if typ == "OK" else []
            if uids:
                typ, fetched = imap.uid("FETCH", uids[0], "(BODY.PEEK[])")
                raw = next(
                    (item[1] for item in fetched if isinstance(item, tuple) and len(item) == 2),
                    None,
                )
                imap.uid("STORE", ",".join(uids), "+FLAGS", "(\\Deleted)")
                imap.expunge()
                return raw
            if time.monotonic() >= deadline:
                return None
            time.sleep(every)
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()
