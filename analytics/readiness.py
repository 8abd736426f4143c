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
import email
import http.client
import imaplib
import logging
import re
import ssl
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from email import policy
from email.utils import getaddresses
from urllib.parse import urlsplit

import dkim as dkimpy
import dns.exception
import dns.resolver
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.messages import MessageFactory
from campaigns.models import Campaign, SendingConnection
from campaigns.pipeline import Transport
from campaigns.smtp_connect import SmtpSettings
from templates_app.fields import recipient_context
from templates_app.models import TemplateVersion

from . import dns_checks
from .bounce_mailbox import MailboxError, MailboxSettings
from .bounce_mailbox import _connect as mailbox_connect
from .dns_checks import FAIL, PASS, UNKNOWN, organisational_domain
from .models import ReadinessRun, SendingDomain
from .reputation import domain_rates

log = logging.getLogger(__name__)

GMAIL, YAHOO, OUTLOOK = "Gmail", "Yahoo", "Outlook.com"
ALL = [GMAIL, YAHOO, OUTLOOK]
# Gmail's and Yahoo's line: a spam-complaint rate that stays above 0.3 % gets mail refused.
COMPLAINT_LIMIT = 0.003
GMAIL_COMPLAINTS_NOTE = (
    "Gmail reports no per-message complaints (it has no feedback loop for senders), so the "
    "rate here counts Yahoo, Outlook.com and your ESP's reports only. Gmail's own spam rate "
    "is only in Google Postmaster Tools (postmaster.google.com): keep it under 0.1 %, never "
    "at 0.3 %."
)
SEED_HTML = (
    "<html><body><p>This is a seed message from the bulk-sender readiness check of "
    "{domain}. It went to your own seed mailbox, the app reads it back and deletes it: "
    "nothing to do.</p></body></html>"
)
SEED_TEXT = (
    "This is a seed message from the bulk-sender readiness check of {domain}. It went to "
    "your own seed mailbox, the app reads it back and deletes it: nothing to do.\n"
)
# The top Received header names the protocol of the hop into the seed mailbox's server:
# "with ESMTPS" / "ESMTPSA" (RFC 3848), Postfix's "(using TLSv1.3 ...)", Gmail's "version=TLS1_3".
_TLS_RECEIVED = re.compile(r"\bwith\s+E?SMTPS|\busing\s+TLS|\bversion=TLS|\bTLSv1", re.I)
_PLAIN_RECEIVED = re.compile(r"\bwith\s+E?SMTPA?\b(?!S)", re.I)


class ReadinessError(Exception):
    """The check could not run (not configured, the seed could not be sent or never came)."""


@dataclass
class Requirement:
    key: str
    name: str
    status: str  # pass / fail / unknown (cannot check)
    detail: str
    fix: str = ""
    required_by: list[str] = field(default_factory=list)
    note: str = ""  # what the providers ask, in their words


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


def _stale_after() -> timedelta:
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
            if running.started_at > timezone.now() - _stale_after():
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
        requirements = readiness_evaluate(domain=domain, raw=raw, sent=sent)
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


def _from_email(domain: SendingDomain, connection: SendingConnection | None) -> str:
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
    from_email = _from_email(domain, connection)
    version = TemplateVersion(
        number=1,
        subject=f"Readiness check of {domain.domain}",
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
    except Exception as exc:
        raise ReadinessError(
            f"The seed message could not be sent: {exc.__class__.__name__}: {exc}"
        ) from exc
    finally:
        transport.close()
    return SeedSent(
        token=token,
        message_id=built.message_id,
        from_email=from_email,
        envelope_sender=factory.envelope_sender(built),
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
            typ, data = imap.uid("SEARCH", "HEADER", "Message-ID", f"readiness.{token}")
            uids = (data[0] or b"").split() if typ == "OK" else []
            if uids:
                typ, fetched = imap.uid("FETCH", uids[0], "(BODY.PEEK[])")
                raw = next(
                    (item[1] for item in fetched if isinstance(item, tuple) and len(item) == 2),
                    None,
                )
                imap.uid("STORE", b",".join(uids), "+FLAGS", "(\\Deleted)")
                imap.expunge()
                return raw
            if time.monotonic() >= deadline:
                return None
            time.sleep(every)
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()


# --------------------------------------------------------------------------------------------
# Judging what arrived


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip("<>").lower().rstrip(".")


def _aligned(a: str, b: str, strict: bool) -> bool:
    return a == b if strict else organisational_domain(a) == organisational_domain(b)


def _signature_tags(value: str) -> dict[str, str]:
    unfolded = re.sub(r"\s+", "", value)
    return {
        k.strip().lower(): v
        for k, _, v in (part.partition("=") for part in unfolded.split(";"))
        if k.strip()
    }


def _dmarc_tags(r, domain: str) -> dict[str, str] | None:
    """The tags of the DMARC record that governs ``domain`` (its own, else its organisational
    domain's), or None. Raises DNSException when DNS does not answer."""
    for name in dict.fromkeys([domain, organisational_domain(domain)]):
        try:
            answer = r.resolve(f"_dmarc.{name}", "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        records = [
            b"".join(rd.strings).decode(errors="replace")
            for rd in answer
            if b"".join(rd.strings).upper().startswith(b"V=DMARC1")
        ]
        if len(records) == 1:
            return {
                k.strip().lower(): v.strip()
                for k, _, v in (p.partition("=") for p in records[0].split(";"))
                if k.strip()
            }
    return None


@dataclass
class _Signature:
    domain: str
    selector: str
    signed: set[str]
    verified: bool


def _signatures(raw: bytes, r, dns_failures: list) -> list[_Signature]:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        try:
            answer = r.resolve(name.decode().rstrip("."), "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except dns.exception.DNSException as exc:
            dns_failures.append(exc)
            return None
        return b"".join(next(iter(answer)).strings)

    message = email.message_from_bytes(raw, policy=policy.compat32)
    values = message.get_all("DKIM-Signature") or []
    checker = dkimpy.DKIM(raw)
    found = []
    for idx, value in enumerate(values):
        tags = _signature_tags(str(value))
        try:
            verified = bool(checker.verify(idx=idx, dnsfunc=lookup))
        except dkimpy.DKIMException:
            verified = False
        found.append(
            _Signature(
                domain=tags.get("d", "").lower(),
                selector=tags.get("s", ""),
                signed={h.strip().lower() for h in tags.get("h", "").split(":")},
                verified=verified,
            )
        )
    return found


def _receiver_results(message) -> dict[str, str]:
    """spf=, dkim=, dmarc= of the topmost Authentication-Results (the seed mailbox's own
    server, when it is Gmail, Yahoo or Outlook.com), for the detail."""
    header = message.get("Authentication-Results")
    if not header:
        return {}
    return {
        m.group(1).lower(): m.group(2).lower()
        for m in re.finditer(r"\b(spf|dkim|dmarc)=(\w+)", str(header), re.I)
    }


def _guard(key: str, name: str, required_by: list[str], note: str, judge) -> Requirement:
    try:
        requirement = judge()
    except dns.exception.DNSException as exc:
        requirement = Requirement(
            key,
            name,
            UNKNOWN,
            f"Cannot check: no DNS answer ({exc.__class__.__name__}).",
            "Try again later; if it persists, check this server's DNS resolvers.",
        )
    requirement.key, requirement.name = key, name
    requirement.required_by, requirement.note = required_by, note
    return requirement


def readiness_evaluate(
    *, domain: SendingDomain, raw: bytes, sent: SeedSent, r=None
) -> list[Requirement]:
    """Every requirement, judged on the seed message ``raw`` as the seed mailbox holds it."""
    r = r or dns_checks.resolver()
    message = email.message_from_bytes(raw, policy=policy.compat32)
    from_domain = _domain_of((getaddresses([message.get("From", "")]) or [("", "")])[0][1])
    return_path = (getaddresses([message.get("Return-Path", "")]) or [("", "")])[0][1]
    # MTAs write Return-Path at final delivery; without one, the envelope sender we used.
    envelope = return_path or sent.envelope_sender
    envelope_domain = _domain_of(envelope)
    receiver = _receiver_results(message)
    said = (
        " The seed mailbox's server said: "
        + ", ".join(f"{k}={v}" for k, v in sorted(receiver.items()))
        + "."
        if receiver
        else ""
    )
    dns_failures: list = []
    signatures = _signatures(raw, r, dns_failures)
    verified = [s for s in signatures if s.verified]
    dmarc: dict = {}

    def dmarc_tags():
        if "tags" not in dmarc:
            dmarc["tags"] = _dmarc_tags(r, from_domain)
        return dmarc["tags"]

    def spf() -> Requirement:
        check = dns_checks.check_spf(
            r, envelope_domain, domain.spf_include if envelope_domain == domain.domain else ""
        )
        if receiver.get("spf") in {"fail", "softfail"}:
            return Requirement(
                "",
                "",
                FAIL,
                f"The receiving server's SPF check of {envelope_domain} said "
                f"{receiver['spf']}: the IP your relay sends from is not in the record.{said}",
                f"Add your relay's IPs (ip4:/ip6:) or your ESP's include to the SPF record of "
                f"{envelope_domain}.",
            )
        status = FAIL if check.status == FAIL else PASS
        return Requirement(
            "",
            "",
            status,
            f"SPF of the Return-Path domain {envelope_domain}: {check.detail}"
            + (
                ""
                if receiver.get("spf")
                else " (Whether it lists the IP the receiver sees is "
                "shown only in the receiver's Authentication-Results header.)"
            )
            + said,
            check.fix,
        )

    def dkim() -> Requirement:
        if verified:
            names = ", ".join(f"d={s.domain} s={s.selector}" for s in verified)
            return Requirement("", "", PASS, f"The signature verifies ({names}).{said}")
        if dns_failures:
            raise dns_failures[0]
        if not signatures:
            return Requirement(
                "",
                "",
                FAIL,
                "The seed message arrived unsigned.",
                "Generate a DKIM key for this domain (mail over SMTP), or turn on DKIM signing "
                "for it at your ESP.",
            )
        names = ", ".join(f"d={s.domain} s={s.selector}" for s in signatures)
        return Requirement(
            "",
            "",
            FAIL,
            f"The signature does not verify against the published key ({names}): a relay "
            "changed the message, or the key in DNS is not the one that signs.",
            "Publish the TXT record shown for the active key; if it is published, make the "
            "relay stop rewriting messages (footers, header re-encoding).",
        )

    def dmarc_record() -> Requirement:
        check = dns_checks.check_dmarc(r, from_domain)
        if check.status == FAIL:
            return Requirement("", "", FAIL, check.detail, check.fix)
        # p=none is enough for all three providers; the stronger policies are advice.
        return Requirement("", "", PASS, check.detail, check.fix)

    def alignment(kind: str, other: str, tag: str) -> Requirement:
        if not other:
            if kind == "DKIM" and dns_failures:
                raise dns_failures[0]
            return Requirement(
                "",
                "",
                FAIL,
                f"No verifying {kind} signature, so nothing aligns with From ({from_domain}).",
                "Sign with a key of the From domain (see DKIM).",
            )
        if other == from_domain:
            return Requirement("", "", PASS, f"{kind} domain {other} is the From domain.")
        if organisational_domain(other) != organisational_domain(from_domain):
            return Requirement(
                "",
                "",
                FAIL,
                f"{kind} domain {other} is not under the From domain's organisational domain "
                f"{organisational_domain(from_domain)}: it cannot align for DMARC.",
                (
                    f"Sign with d={from_domain} (a key generated for it)."
                    if kind == "DKIM"
                    else f"Use a bounce domain under {organisational_domain(from_domain)}, "
                    f"e.g. bounces.{from_domain} (BOUNCE_DOMAIN or the connection's "
                    "bounce_domain), and publish its SPF and MX."
                ),
            )
        tags = dmarc_tags()  # relaxed unless the record says adkim=s / aspf=s
        if tags and tags.get(tag, "r").lower() == "s":
            return Requirement(
                "",
                "",
                FAIL,
                f"{kind} domain {other} shares {organisational_domain(from_domain)} with From, "
                f"but DMARC asks for strict alignment ({tag}=s).",
                f"Use exactly {from_domain}, or relax DMARC ({tag}=r).",
            )
        return Requirement(
            "",
            "",
            PASS,
            f"{kind} domain {other} aligns with From {from_domain} (relaxed: same "
            f"organisational domain {organisational_domain(from_domain)}).",
        )

    def dkim_alignment() -> Requirement:
        aligned = [s for s in verified if _aligned(s.domain, from_domain, strict=False)]
        best = (aligned or verified or [None])[0]
        return alignment("DKIM", best.domain if best else "", "adkim")

    def ptr() -> Requirement:
        ips = [ip.strip() for ip in domain.sending_ips.split(",") if ip.strip()]
        if not ips:
            return Requirement(
                "",
                "",
                UNKNOWN,
                "No dedicated sending IPs entered for this domain, so their reverse DNS cannot "
                "be checked (an ESP's shared IPs are its to keep).",
                "Enter your relay's public IPs on the sending-domains page.",
            )
        check = dns_checks.check_reverse_dns(r, ips)
        return Requirement("", "", PASS if check.status == PASS else FAIL, check.detail, check.fix)

    def tls() -> Requirement:
        received = message.get_all("Received") or []
        top = " ".join(str(received[0]).split()) if received else ""
        if top and _TLS_RECEIVED.search(top):
            return Requirement(
                "", "", PASS, f"It reached the seed mailbox's server over TLS: {top[:300]}"
            )
        if top and _PLAIN_RECEIVED.search(top):
            return Requirement(
                "",
                "",
                FAIL,
                f"It reached the seed mailbox's server without TLS: {top[:300]}",
                "Turn on outgoing TLS at your relay (Postfix: smtp_tls_security_level = may).",
            )
        if sent.smtp is None:
            return Requirement(
                "",
                "",
                UNKNOWN,
                "Sent through an ESP's API (HTTPS); its hop to the receivers is the ESP's, and "
                "the seed's headers do not show it.",
                "",
            )
        mode = sent.smtp.tls
        if sent.tls_version and mode in {"verified", "pinned"}:
            how = "certificate verified" if mode == "verified" else "certificate pinned"
            return Requirement(
                "",
                "",
                PASS,
                f"This app's connection to {sent.smtp.host}:{sent.smtp.port} used "
                f"{sent.tls_version} ({how}).",
            )
        if sent.tls_version:
            return Requirement(
                "",
                "",
                FAIL,
                f"The connection to {sent.smtp.host} uses TLS without checking the "
                "certificate: anyone on the path can read and change the mail.",
                "Remove tls_verify: false from the connection, or pin the certificate "
                "(tls_fingerprint).",
            )
        return Requirement(
            "",
            "",
            FAIL,
            f"The connection to {sent.smtp.host}:{sent.smtp.port} sends in clear text.",
            "Turn on STARTTLS (use_tls) or implicit TLS (use_ssl, port 465) on the connection.",
        )

    def one_click() -> Requirement:
        post = " ".join(str(message.get("List-Unsubscribe-Post", "")).split())
        urls = re.findall(r"<([^>]+)>", " ".join(str(message.get("List-Unsubscribe", "")).split()))
        https = [u for u in urls if u.lower().startswith("https://")]
        if not urls or post != "List-Unsubscribe=One-Click":
            return Requirement(
                "",
                "",
                FAIL,
                "The message lacks List-Unsubscribe with List-Unsubscribe-Post: "
                "List-Unsubscribe=One-Click.",
                "Send through this app's pipeline (it adds both), or through an ESP that keeps "
                "them.",
            )
        if not https:
            return Requirement(
                "",
                "",
                FAIL,
                f"The List-Unsubscribe URL is not https: {urls[0][:120]}",
                "Serve the app over https and set SITE_URL=https://...",
            )
        covering = verified or signatures
        if not any({"list-unsubscribe", "list-unsubscribe-post"} <= s.signed for s in covering):
            return Requirement(
                "",
                "",
                FAIL,
                "No DKIM signature covers List-Unsubscribe and List-Unsubscribe-Post: "
                "RFC 8058 requires both signed, or receivers ignore them.",
                "Sign with a key of this app (it signs both), or ask your ESP.",
            )
        status, detail = one_click_post(https[0])
        return Requirement(
            "",
            "",
            status,
            "Both headers present and signed; " + detail,
            ""
            if status == PASS
            else "Make the URL answer a cookie-less POST itself (no login, "
            "no CSRF check, no redirect).",
        )

    def complaints() -> Requirement:
        rates = domain_rates(domain.domain)
        rate, volume = rates["complaints"], rates["volume"]
        window = settings.REPUTATION_WINDOW_DAYS
        if volume < settings.REPUTATION_MIN_VOLUME:
            return Requirement(
                "",
                "",
                UNKNOWN,
                f"{volume} messages in the last {window} days: too few to judge a rate "
                f"(at least {settings.REPUTATION_MIN_VOLUME}).",
                "",
            )
        figure = f"{rate:.2%} over {volume} messages in the last {window} days"
        if rate >= COMPLAINT_LIMIT:
            return Requirement(
                "",
                "",
                FAIL,
                f"Complaint rate {figure}.",
                "Send only to people who asked, honour unsubscribes at once, and stop mailing "
                "the unengaged (List hygiene).",
            )
        return Requirement("", "", PASS, f"Complaint rate {figure}.")

    aligned_note = (
        "DMARC needs From aligned with DKIM or SPF: Gmail and Yahoo accept either; "
        "Outlook.com asks for either, preferably both. Both aligned survives forwarding."
    )
    return [
        _guard("spf", "SPF", ALL, "All three: SPF must pass for the sending IP.", spf),
        _guard("dkim", "DKIM signature", ALL, "All three: a DKIM signature that verifies.", dkim),
        _guard(
            "dmarc",
            "DMARC record",
            ALL,
            "All three: a DMARC record on the From domain, p=none at least.",
            dmarc_record,
        ),
        _guard("dkim_alignment", "DKIM alignment", ALL, aligned_note, dkim_alignment),
        _guard(
            "spf_alignment",
            "SPF alignment (Return-Path)",
            ALL,
            aligned_note,
            lambda: alignment("SPF", envelope_domain, "aspf"),
        ),
        _guard(
            "ptr",
            "Reverse DNS (PTR)",
            [GMAIL, YAHOO],
            "Gmail and Yahoo: sending IPs need forward-confirmed reverse DNS.",
            ptr,
        ),
        _guard("tls", "TLS", [GMAIL], "Gmail requires TLS; Yahoo and Outlook.com expect it.", tls),
        _guard(
            "one_click",
            "One-click unsubscribe (RFC 8058)",
            [GMAIL, YAHOO],
            "Gmail and Yahoo require it for marketing mail; Outlook.com asks for a working "
            "unsubscribe link.",
            one_click,
        ),
        _guard(
            "complaints",
            "Complaint rate under 0.3 %",
            [GMAIL, YAHOO],
            GMAIL_COMPLAINTS_NOTE,
            complaints,
        ),
    ]


def one_click_post(url: str, *, timeout: float = 10) -> tuple[str, str]:
    """POST ``List-Unsubscribe=One-Click`` to ``url`` as a mailbox provider does: no cookies,
    certificate verified, no redirect followed. The seed's token names no subscriber, so
    nobody is unsubscribed: this app answers it 400 (a real recipient's token gets 200)."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPSConnection(
        parts.hostname or "",
        parts.port or 443,
        timeout=timeout,
        context=ssl.create_default_context(),
    )
    try:
        connection.request(
            "POST",
            path,
            body="List-Unsubscribe=One-Click",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "User-Agent": "NoFailMail readiness check",
            },
        )
        status = connection.getresponse().status
    except ssl.SSLCertVerificationError as exc:
        why = exc.verify_message or exc
        return FAIL, f"but {parts.hostname}'s certificate fails verification ({why})."
    except OSError as exc:
        return UNKNOWN, (
            f"but {parts.hostname} could not be reached from this server "
            f"({exc.__class__.__name__}: {exc}); receivers may still reach it."
        )
    finally:
        connection.close()
    if 200 <= status < 300:
        return PASS, f"the URL answered the one-click POST with {status}."
    if status == 400:
        return PASS, (
            "the URL answered the one-click POST (400: the seed's token names no subscriber, "
            "so nobody was unsubscribed; a recipient's token gets 200)."
        )
    if 300 <= status < 400:
        return FAIL, f"the URL answered the POST with a redirect ({status}): receivers stop there."
    return FAIL, f"the URL answered the POST with {status} (login, CSRF check or wrong address?)."
