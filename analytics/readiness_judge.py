"""What the readiness check's seed message shows, requirement by requirement (see
analytics.readiness for why a real message is judged).

The message is judged as the seed mailbox holds it, the way a receiver would: dkimpy verifies
each DKIM signature against the key in DNS; alignment compares the From domain with each
verifying signature's ``d=`` and with the Return-Path domain (relaxed, by organisational
domain, unless DMARC asks for strict); the one-click URL is POSTed like a mailbox provider
does. Every DNS question goes through ``dns_checks.resolver()``; a question DNS does not answer
makes that requirement "cannot check", never "fail".
"""

from __future__ import annotations

import email
import http.client
import re
import ssl
from dataclasses import dataclass
from email import policy
from email.utils import getaddresses
from urllib.parse import urlsplit

import dkim as dkimpy
import dns.exception
import dns.resolver
from django.conf import settings

from . import dns_checks
from .dns_checks import FAIL, PASS, UNKNOWN, organisational_domain
from .models import SendingDomain
from .reputation import domain_rates

GMAIL, YAHOO, OUTLOOK = "Gmail", "Yahoo", "Outlook.com"
ALL = [GMAIL, YAHOO, OUTLOOK]
# Gmail's and Yahoo's line: a spam-complaint rate that stays above 0.3 % gets mail refused.
COMPLAINT_LIMIT = 0.003
GMAIL_COMPLAINTS_NOTE = (
    "Gmail reports no per-message complaints (it has no feedback loop for senders), so the "
    "rate here counts Yahoo's, Outlook.com's and your ESP's reports only. Gmail's own spam "
    "rate is only in Google Postmaster Tools (postmaster.google.com): keep it under 0.1 %, "
    "never at 0.3 %."
)
ALIGNED_NOTE = (
    "DMARC needs From aligned with DKIM or SPF: Gmail and Yahoo accept either; Outlook.com "
    "asks for either, preferably both. Both aligned survives forwarding."
)
# The top Received header names the protocol of the hop into the seed mailbox's server:
# "with ESMTPS" / "ESMTPSA" (RFC 3848), Postfix's "(using TLSv1.3 ...)", Gmail's "version=TLS1_3".
_TLS_RECEIVED = re.compile(r"\bwith\s+E?SMTPS|\busing\s+TLS|\bversion=TLS|\bTLSv1", re.I)
_PLAIN_RECEIVED = re.compile(r"\bwith\s+E?SMTPA?\b(?!S)", re.I)


@dataclass
class Verdict:
    status: str  # pass / fail / unknown (cannot check)
    detail: str
    fix: str = ""


@dataclass
class Requirement:
    key: str
    name: str
    status: str
    detail: str
    fix: str
    required_by: list[str]
    note: str  # what the providers ask, in their words


@dataclass
class Signature:
    domain: str
    selector: str
    signed: set[str]
    verified: bool


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip("<>").lower().rstrip(".")


def _address(message, header: str) -> str:
    return (getaddresses([message.get(header, "")]) or [("", "")])[0][1]


def _tags(value: str) -> dict[str, str]:
    return {
        k.strip().lower(): v.strip()
        for k, _, v in (part.partition("=") for part in value.split(";"))
        if k.strip()
    }


def dmarc_tags(r, domain: str) -> dict[str, str] | None:
    """The tags of the DMARC record that governs ``domain`` (its own, else its organisational
    domain's), or None. Raises DNSException when DNS does not answer."""
    for name in dict.fromkeys([domain, organisational_domain(domain)]):
        try:
            answer = r.resolve(f"_dmarc.{name}", "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        records = [b"".join(rd.strings).decode(errors="replace") for rd in answer]
        records = [t for t in records if t.upper().startswith("V=DMARC1")]
        if len(records) == 1:
            return _tags(records[0])
    return None


def signatures(raw: bytes, r, dns_failures: list) -> list[Signature]:
    """Each DKIM signature of ``raw``, verified by dkimpy against the key DNS publishes. A key
    lookup DNS does not answer is noted in ``dns_failures`` (then "unverified" means "unknown")."""

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
    checker = dkimpy.DKIM(raw)
    found = []
    for idx, value in enumerate(message.get_all("DKIM-Signature") or []):
        tags = _tags(re.sub(r"\s+", "", str(value)))
        try:
            verified = bool(checker.verify(idx=idx, dnsfunc=lookup))
        except dkimpy.DKIMException:
            verified = False
        found.append(
            Signature(
                domain=tags.get("d", "").lower(),
                selector=tags.get("s", ""),
                signed={h.strip().lower() for h in tags.get("h", "").split(":")},
                verified=verified,
            )
        )
    return found


class SeedJudge:
    """The requirements, one method each, judged on one seed message."""

    def __init__(self, *, domain: SendingDomain, raw: bytes, sent, r):
        self.domain, self.sent, self.r = domain, sent, r
        self.message = email.message_from_bytes(raw, policy=policy.compat32)
        self.from_domain = _domain_of(_address(self.message, "From"))
        # MTAs write Return-Path at final delivery; without one, the envelope sender we used.
        self.envelope_domain = _domain_of(
            _address(self.message, "Return-Path") or sent.envelope_sender
        )
        header = str(self.message.get("Authentication-Results") or "")
        # spf=, dkim=, dmarc= of the topmost Authentication-Results: the seed mailbox's own
        # server's verdict (when it is Gmail, Yahoo or Outlook.com, theirs).
        self.receiver = {
            m.group(1).lower(): m.group(2).lower()
            for m in re.finditer(r"\b(spf|dkim|dmarc)=(\w+)", header, re.I)
        }
        self.dns_failures: list = []
        self.signatures = signatures(raw, r, self.dns_failures)
        self.verified = [s for s in self.signatures if s.verified]
        self._dmarc: dict = {}

    @property
    def said(self) -> str:
        if not self.receiver:
            return ""
        verdicts = ", ".join(f"{k}={v}" for k, v in sorted(self.receiver.items()))
        return f" The seed mailbox's server said: {verdicts}."

    def dmarc_tags(self) -> dict | None:
        if "tags" not in self._dmarc:
            self._dmarc["tags"] = dmarc_tags(self.r, self.from_domain)
        return self._dmarc["tags"]

    def _no_return_path(self) -> Verdict:
        """The verdict of a requirement on the Return-Path domain when there is none."""
        return Verdict(
            UNKNOWN,
            "The seed arrived without a Return-Path header, and the ESP chose the envelope "
            "sender: its domain cannot be seen here.",
            "Use a seed mailbox whose server writes Return-Path (Gmail, Yahoo, Outlook.com "
            "do), or look up the ESP's custom return-path (bounce) domain setting.",
        )

    def spf(self) -> Verdict:
        rp = self.envelope_domain
        if not rp:
            return self._no_return_path()
        if self.receiver.get("spf") in {"fail", "softfail"}:
            return Verdict(
                FAIL,
                f"The receiving server's SPF check of {rp} said {self.receiver['spf']}: the IP "
                f"your relay sends from is not in the record.{self.said}",
                f"Add your relay's IPs (ip4:/ip6:) or your ESP's include to the SPF record of "
                f"{rp}.",
            )
        include = self.domain.spf_include if rp == self.domain.domain else ""
        check = dns_checks.check_spf(self.r, rp, include)
        unseen = (
            ""
            if self.receiver.get("spf")
            else " (Whether it lists the IP the receiver sees shows only in the receiver's "
            "Authentication-Results header.)"
        )
        return Verdict(
            FAIL if check.status == FAIL else PASS,
            f"SPF of the Return-Path domain {rp}: {check.detail}{unseen}{self.said}",
            check.fix,
        )

    def dkim(self) -> Verdict:
        if self.verified:
            names = ", ".join(f"d={s.domain} s={s.selector}" for s in self.verified)
            return Verdict(PASS, f"The signature verifies ({names}).{self.said}")
        if self.dns_failures:
            raise self.dns_failures[0]
        if not self.signatures:
            return Verdict(
                FAIL,
                "The seed message arrived unsigned.",
                "Generate a DKIM key for this domain (mail over SMTP), or turn on DKIM signing "
                "for it at your ESP.",
            )
        names = ", ".join(f"d={s.domain} s={s.selector}" for s in self.signatures)
        return Verdict(
            FAIL,
            f"The signature does not verify against the published key ({names}): a relay "
            "changed the message, or the key in DNS is not the one that signs.",
            "Publish the TXT record shown for the active key; if it is published, make the "
            "relay stop rewriting messages (footers, header re-encoding).",
        )

    def dmarc(self) -> Verdict:
        check = dns_checks.check_dmarc(self.r, self.from_domain)
        # p=none is enough for all three providers; the stronger policies are advice.
        return Verdict(FAIL if check.status == FAIL else PASS, check.detail, check.fix)

    def _alignment(self, kind: str, other: str, tag: str) -> Verdict:
        ours = self.from_domain
        org = organisational_domain(ours)
        if other == ours:
            return Verdict(PASS, f"{kind} domain {other} is the From domain.")
        if organisational_domain(other) != org:
            return Verdict(
                FAIL,
                f"{kind} domain {other} is not under the From domain's organisational domain "
                f"{org}: it cannot align for DMARC.",
                f"Sign with d={ours} (a key generated for it)."
                if kind == "DKIM"
                else f"Use a bounce domain under {org}, e.g. bounces.{ours} (BOUNCE_DOMAIN or "
                "the connection's bounce_domain), and publish its SPF and MX.",
            )
        tags = self.dmarc_tags()  # relaxed unless the record says adkim=s / aspf=s
        if tags and tags.get(tag, "r").lower() == "s":
            return Verdict(
                FAIL,
                f"{kind} domain {other} shares {org} with From, but DMARC asks for strict "
                f"alignment ({tag}=s).",
                f"Use exactly {ours}, or relax DMARC ({tag}=r).",
            )
        return Verdict(
            PASS,
            f"{kind} domain {other} aligns with From {ours} (relaxed: same organisational "
            f"domain {org}).",
        )

    def dkim_alignment(self) -> Verdict:
        if not self.verified:
            if self.dns_failures:
                raise self.dns_failures[0]
            return Verdict(
                FAIL,
                f"No verifying DKIM signature, so nothing aligns with From ({self.from_domain}).",
                "Sign with a key of the From domain (see DKIM signature).",
            )
        org = organisational_domain(self.from_domain)
        aligned = [s for s in self.verified if organisational_domain(s.domain) == org]
        exact = [s for s in aligned if s.domain == self.from_domain]
        return self._alignment("DKIM", (exact or aligned or self.verified)[0].domain, "adkim")

    def spf_alignment(self) -> Verdict:
        if not self.envelope_domain:
            return self._no_return_path()
        return self._alignment("SPF", self.envelope_domain, "aspf")

    def ptr(self) -> Verdict:
        ips = [ip.strip() for ip in self.domain.sending_ips.split(",") if ip.strip()]
        if not ips:
            return Verdict(
                UNKNOWN,
                "No dedicated sending IPs entered for this domain, so their reverse DNS cannot "
                "be checked (an ESP's shared IPs are its to keep).",
                "Enter your relay's public IPs on the sending-domains page.",
            )
        check = dns_checks.check_reverse_dns(self.r, ips)
        return Verdict(PASS if check.status == PASS else FAIL, check.detail, check.fix)

    def tls(self) -> Verdict:
        received = self.message.get_all("Received") or []
        top = " ".join(str(received[0]).split()) if received else ""
        if top and _TLS_RECEIVED.search(top):
            return Verdict(PASS, f"It reached the seed mailbox's server over TLS: {top[:300]}")
        if top and _PLAIN_RECEIVED.search(top):
            return Verdict(
                FAIL,
                f"It reached the seed mailbox's server without TLS: {top[:300]}",
                "Turn on outgoing TLS at your relay (Postfix: smtp_tls_security_level = may).",
            )
        smtp = self.sent.smtp
        if smtp is None:
            return Verdict(
                UNKNOWN,
                "Sent through an ESP's API (HTTPS); its hop to the receivers is the ESP's, and "
                "the seed's headers do not show it.",
            )
        where = f"{smtp.host}:{smtp.port}"
        if self.sent.tls_version and smtp.tls in {"verified", "pinned"}:
            how = "certificate verified" if smtp.tls == "verified" else "certificate pinned"
            return Verdict(
                PASS, f"This app's connection to {where} used {self.sent.tls_version} ({how})."
            )
        if self.sent.tls_version:
            return Verdict(
                FAIL,
                f"The connection to {where} uses TLS without checking the certificate: anyone "
                "on the path can read and change the mail.",
                "Remove tls_verify: false from the connection, or pin the certificate "
                "(tls_fingerprint).",
            )
        return Verdict(
            FAIL,
            f"The connection to {where} sends in clear text.",
            "Turn on STARTTLS (use_tls) or implicit TLS (use_ssl, port 465) on the connection.",
        )

    def one_click(self) -> Verdict:
        post = " ".join(str(self.message.get("List-Unsubscribe-Post", "")).split())
        header = " ".join(str(self.message.get("List-Unsubscribe", "")).split())
        urls = re.findall(r"<([^>]+)>", header)
        https = [u for u in urls if u.lower().startswith("https://")]
        if not urls or post != "List-Unsubscribe=One-Click":
            return Verdict(
                FAIL,
                "The message lacks List-Unsubscribe with List-Unsubscribe-Post: "
                "List-Unsubscribe=One-Click.",
                "Send through this app's pipeline (it adds both), or an ESP that keeps them.",
            )
        if not https:
            return Verdict(
                FAIL,
                f"The List-Unsubscribe URL is not https: {urls[0][:120]}",
                "Serve the app over https and set SITE_URL=https://...",
            )
        covering = self.verified or self.signatures
        if not any({"list-unsubscribe", "list-unsubscribe-post"} <= s.signed for s in covering):
            return Verdict(
                FAIL,
                "No DKIM signature covers List-Unsubscribe and List-Unsubscribe-Post: RFC 8058 "
                "requires both signed, or receivers ignore them.",
                "Sign with a key of this app (it signs both), or ask your ESP.",
            )
        status, detail = one_click_post(https[0])
        return Verdict(
            status,
            "Both headers present and signed; " + detail,
            ""
            if status == PASS
            else "Make the URL answer a cookie-less POST itself (no login, no CSRF check, "
            "no redirect).",
        )

    def complaints(self) -> Verdict:
        rates = domain_rates(self.domain.domain)
        rate, volume = rates["complaints"], rates["volume"]
        window = settings.REPUTATION_WINDOW_DAYS
        if volume < settings.REPUTATION_MIN_VOLUME:
            return Verdict(
                UNKNOWN,
                f"{volume} messages in the last {window} days: too few to judge a rate "
                f"(at least {settings.REPUTATION_MIN_VOLUME}).",
            )
        figure = f"{rate:.2%} over {volume} messages in the last {window} days"
        if rate >= COMPLAINT_LIMIT:
            return Verdict(
                FAIL,
                f"Complaint rate {figure}.",
                "Send only to people who asked, honour unsubscribes at once, and stop mailing "
                "the unengaged (List hygiene).",
            )
        return Verdict(PASS, f"Complaint rate {figure}.")


# (key, name, who requires it, what they ask, the judge's method)
REQUIREMENTS = [
    ("spf", "SPF", ALL, "All three: SPF must pass for the sending IP.", SeedJudge.spf),
    ("dkim", "DKIM signature", ALL, "All three: a DKIM signature that verifies.", SeedJudge.dkim),
    (
        "dmarc",
        "DMARC record",
        ALL,
        "All three: a DMARC record on the From domain, p=none at least.",
        SeedJudge.dmarc,
    ),
    ("dkim_alignment", "DKIM alignment", ALL, ALIGNED_NOTE, SeedJudge.dkim_alignment),
    (
        "spf_alignment",
        "SPF alignment (Return-Path)",
        ALL,
        ALIGNED_NOTE,
        SeedJudge.spf_alignment,
    ),
    (
        "ptr",
        "Reverse DNS (PTR)",
        [GMAIL, YAHOO],
        "Gmail and Yahoo: sending IPs need forward-confirmed reverse DNS.",
        SeedJudge.ptr,
    ),
    ("tls", "TLS", [GMAIL], "Gmail requires TLS; Yahoo and Outlook.com expect it.", SeedJudge.tls),
    (
        "one_click",
        "One-click unsubscribe (RFC 8058)",
        [GMAIL, YAHOO],
        "Gmail and Yahoo require it for marketing mail; Outlook.com asks for a working "
        "unsubscribe link.",
        SeedJudge.one_click,
    ),
    (
        "complaints",
        "Complaint rate under 0.3 %",
        [GMAIL, YAHOO],
        GMAIL_COMPLAINTS_NOTE,
        SeedJudge.complaints,
    ),
]


def seed_requirements(*, domain: SendingDomain, raw: bytes, sent, r=None) -> list[Requirement]:
    """Every requirement, judged on the seed message ``raw`` as the seed mailbox holds it."""
    judge = SeedJudge(domain=domain, raw=raw, sent=sent, r=r or dns_checks.resolver())
    out = []
    for key, name, required_by, note, method in REQUIREMENTS:
        try:
            verdict = method(judge)
        except dns.exception.DNSException as exc:
            verdict = Verdict(
                UNKNOWN,
                f"Cannot check: no DNS answer ({exc.__class__.__name__}).",
                "Try again later; if it persists, check this server's DNS resolvers.",
            )
        out.append(
            Requirement(
                key=key,
                name=name,
                status=verdict.status,
                detail=verdict.detail,
                fix=verdict.fix,
                required_by=required_by,
                note=note,
            )
        )
    return out


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
