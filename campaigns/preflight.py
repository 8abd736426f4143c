"""Pre-flight checks run before scheduling. Each finding has a code, a severity ("blocking",
"warning" or "info"), a message a marketer understands, and details. Blocking findings refuse
scheduling unless an admin overrides them."""

import hashlib
import ipaddress
import re
import socket
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.template.defaultfilters import pluralize

from analytics.blocklists import PREFLIGHT_LIFETIME, link_domains, listings, message_urls
from analytics.dns_checks import FAIL, UNKNOWN, WARN, resolver
from analytics.guardrail import campaign_alerts
from analytics.models import SendingDomain
from subscribers.models import Subscriber
from templates_app.fields import is_recipient_data, recipient_context, recipient_empty_q
from templates_app.lint import lint_version
from templates_app.merge import Tag
from templates_app.models import TemplateVersion
from templates_app.rendering import compile_version

from .mailbox_providers import mailbox_provider_of
from .messages import GMAIL_CLIP_BYTES, MessageFactory
from .models import Campaign, SendingConnection
from .selectors import audience_queryset

BLOCKING = "blocking"
WARNING = "warning"
INFO = "info"  # worth knowing, nothing to fix (e.g. a blocklist that could not be asked)
SPAM_BLOCKING_SCORE = 5.0
SPAM_WARNING_SCORE = 3.0
TRIGGER_PHRASES = [
    "100% free",
    "act now",
    "buy now",
    "cash bonus",
    "click here",
    "double your",
    "earn money",
    "free money",
    "guaranteed",
    "limited time",
    "no credit check",
    "risk-free",
    "winner",
    "you have been selected",
    "viagra",
    "crypto giveaway",
]
SHORTENERS = {
    "bit.ly",
    "tinyurl.com",
    "goo.gl",
    "t.co",
    "ow.ly",
    "is.gd",
    "buff.ly",
    "rebrand.ly",
    "cutt.ly",
    "shorturl.at",
}
ALWAYS_FILLED = {
    "unsubscribe_url",
    "preferences_url",
    "view_in_browser_url",
    "email",
    "company_name",
    "postal_address",
}


@dataclass
class Finding:
    code: str
    severity: str
    message: str
    details: list[str] = field(default_factory=list)
    points: float = 0.0
    link: str = ""  # a page where the marketer acts on it (a blocklist's removal page)


def _version(campaign: Campaign) -> TemplateVersion | None:
    return campaign.template_version or (
        campaign.template.versions.order_by("-number").first()
        if campaign.template is not None
        else None
    )


# --- template lint (provided by templates_app.lint once it exists) -------------------------


def lint_findings(campaign: Campaign) -> list[Finding]:
    version = _version(campaign)
    if version is None:
        return []
    # Every campaign message gets the standard footer (unsubscribe, preferences, postal
    # address) when its template has none (see MessageFactory), so for a campaign these two
    # template findings are already taken care of.
    supplied = {"missing-unsubscribe"}
    if settings.COMPANY_POSTAL_ADDRESS:
        supplied.add("missing-postal-address")
    out = []
    for item in lint_version(version, audience=audience_queryset(campaign)):
        if item.code in supplied:
            continue
        where = f" (line {item.line}, column {item.column})" if item.line else ""
        out.append(
            Finding(
                code=f"lint.{item.code}",
                severity=item.severity,
                message=f"{item.message}{where}",
                details=[item.fix] if getattr(item, "fix", None) else [],
            )
        )
    return out


# --- personalization over the whole audience -----------------------------------------------


def personalization_findings(campaign: Campaign) -> list[Finding]:
    """For every merge field without a default, how many recipients would get it empty —
    counted in SQL over the whole audience, with a few examples."""
    version = _version(campaign)
    if version is None:
        return []
    compiled = compile_version(version)
    tags: dict[str, Tag] = {}
    for plan in compiled.plans:
        for tag in plan.tags:
            if not tag.has_default and tag.path not in ALWAYS_FILLED:
                tags.setdefault(tag.path, tag)
    audience = audience_queryset(campaign)
    out = []
    for path, tag in sorted(tags.items()):
        # Empty exactly when recipient_context would leave it empty (templates_app.fields).
        empty = recipient_empty_q(path) if is_recipient_data(path) else None
        if empty is None:
            out.append(
                Finding(
                    "personalization.unknown_field",
                    BLOCKING,
                    f"{{{{ {path} }}}} is not a field any recipient has: it would "
                    "render empty for everyone.",
                    [f"line {tag.line}, column {tag.column}"],
                )
            )
            continue
        missing = audience.filter(empty)
        count = missing.count()
        if count:
            examples = list(missing.order_by("pk").values_list("email", flat=True)[:5])
            out.append(
                Finding(
                    "personalization.empty",
                    WARNING,
                    f"{count} recipient{pluralize(count)} would get an empty {{{{ {path} }}}}: "
                    "add a default "
                    f'(e.g. {{{{ {path}|default:"there" }}}}) or fill the field.',
                    examples,
                )
            )
    return out


# --- link check -------------------------------------------------------------------------------


class _HeadRequest(urllib.request.Request):
    def get_method(self):
        return "HEAD"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx answer is a working link: report it, never follow it (a redirect could point the
    checker at an internal address)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _is_private(host: str) -> bool:
    """True when the host resolves to a loopback, private, link-local or reserved address:
    the link check must not become a way for an editor to probe the internal network."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False  # unresolvable: reported as a network error by the request itself
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        ):
            return True
    return False


def _check_url(url: str, timeout: float) -> tuple[str, int | None, str]:
    """(url, status or None, error kind: '' | 'network: ...' | 'http' | 'private')."""
    if not url.startswith(("http://", "https://")):
        return url, None, "network: not an http(s) link"
    host = urlsplit(url).hostname or ""
    if not getattr(settings, "LINK_CHECK_ALLOW_PRIVATE", False) and _is_private(host):
        return url, None, "private"
    headers = {"User-Agent": "NoFailMail link check"}
    try:
        try:
            head = _HeadRequest(url, headers=headers)
            with _OPENER.open(head, timeout=timeout) as r:
                return url, r.status, ""
        except urllib.error.HTTPError as exc:
            if exc.code not in (405, 501):
                raise
        get = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) only
        with _OPENER.open(get, timeout=timeout) as response:
            return url, response.status, ""
    except urllib.error.HTTPError as exc:
        return url, exc.code, "http"
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        return url, None, f"network: {getattr(exc, 'reason', exc)}"


def link_findings(campaign: Campaign, *, timeout: float = 5.0) -> list[Finding]:
    version = _version(campaign)
    if version is None:
        return []
    links = list(compile_version(version, track_links=True).links)
    if not links:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(links))) as pool:
        results = list(pool.map(lambda u: _check_url(u, timeout), links))
    private = [r for r in results if r[2] == "private"]
    results = [r for r in results if r[2] != "private"]
    out = []
    if private:
        out.append(
            Finding(
                "links.private",
                WARNING,
                f"{len(private)} link{pluralize(len(private))} "
                f"point{pluralize(len(private), 's,')} to a private or local network address: "
                "not checked "
                "(and recipients outside your network cannot open them).",
                [url for url, _, _ in private],
            )
        )
    if not results:
        return out
    network = [r for r in results if r[1] is None]
    if network and len(network) == len(results):
        return [
            *out,
            Finding(
                "links.offline",
                WARNING,
                f"Links were NOT checked: none of the {len(links)} link{pluralize(len(links))} "
                "could be reached "
                "(no network or DNS from this server). Check them by hand or retry online.",
                [f"{url} — {error}" for url, _, error in network],
            ),
        ]
    broken = [r for r in results if r[1] is not None and r[1] >= 400]
    if broken:
        out.append(
            Finding(
                "links.broken",
                BLOCKING,
                f"{len(broken)} link{pluralize(len(broken))} "
                f"answer{pluralize(len(broken), 's,')} an error.",
                [f"{url} — HTTP {status}" for url, status, _ in broken],
            )
        )
    if network:
        out.append(
            Finding(
                "links.unreachable",
                BLOCKING,
                f"{len(network)} link{pluralize(len(network))} cannot be reached.",
                [f"{url} — {error}" for url, _, error in network],
            )
        )
    return out


# --- spam score -----------------------------------------------------------------------------


_IMG_RE = re.compile(r"<img\b", re.IGNORECASE)
_TAG_RE = re.compile(r"<[^>]+>")
_HREF_RE = re.compile(r"""href\s*=\s*["']https?://([^/"':]+)""", re.IGNORECASE)


def spam_findings(*, subject: str, html: str, text: str, unsubscribe_url: str) -> list[Finding]:
    """SpamAssassin-style points, each with its reason, plus the total as one finding."""
    points: list[tuple[float, str]] = []
    letters = [c for c in subject if c.isalpha()]
    if len(letters) >= 4 and sum(c.isupper() for c in letters) / len(letters) > 0.6:
        points.append((1.5, "Subject is mostly capital letters."))
    if re.search(r"[!?$€]{3,}", subject):
        points.append((1.0, "Subject has a run of !, ? or currency signs."))
    haystack = f"{subject}\n{_TAG_RE.sub(' ', html)}".lower()
    for phrase in TRIGGER_PHRASES:
        if phrase in haystack:
            points.append((0.75, f"Trigger phrase: “{phrase}”."))
    visible = _TAG_RE.sub("", html).strip()
    images = len(_IMG_RE.findall(html)) - html.count('width="1" height="1"')
    if images and len(visible) / images < 200:
        points.append(
            (
                1.5,
                f"Image-heavy: {images} image{pluralize(images)} "
                f"for {len(visible)} characters of text.",
            )
        )
    if not text.strip():
        points.append((1.5, "No plain-text part."))
    for domain in sorted({d.lower() for d in _HREF_RE.findall(html)} & SHORTENERS):
        points.append((1.0, f"Link shortener: {domain} (hides the destination)."))
    if unsubscribe_url not in html:
        points.append((2.0, "No unsubscribe link in the HTML."))
    total = sum(p for p, _ in points)
    severity = BLOCKING if total >= SPAM_BLOCKING_SCORE else WARNING
    out = [Finding(f"spam.{i}", WARNING, reason, points=p) for i, (p, reason) in enumerate(points)]
    if total >= SPAM_WARNING_SCORE:
        out.insert(
            0,
            Finding(
                "spam.score",
                severity,
                f"Spam score {total:.1f} (blocking at {SPAM_BLOCKING_SCORE}).",
                points=total,
            ),
        )
    return out


# --- size -------------------------------------------------------------------------------------


def size_findings(html: str) -> list[Finding]:
    size = len(html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        return [
            Finding(
                "size.clipped",
                WARNING,
                f"The HTML is {size / 1024:.0f} KB: Gmail clips messages above 102 KB "
                "(and hides the unsubscribe link and the open pixel with it).",
            )
        ]
    return []


# --- sender: reputation alerts, the From domain ----------------------------------------------


def reputation_findings(campaign: Campaign) -> list[Finding]:
    """Open reputation alerts of the campaign's sending domain (and of the campaign itself).
    Warnings here: the hold itself is enforced by the transition (and explained on the page),
    not by the pre-flight, so an admin's pre-flight override never lifts it."""
    out = []
    for alert in campaign_alerts(campaign):
        details = [
            f"Open since {alert.created_at:%Y-%m-%d %H:%M} UTC over "
            f"{alert.volume} message{pluralize(alert.volume)}."
        ]
        if alert.level != "critical":
            message = alert.message
        elif alert.acknowledgement is None:
            message = (
                f"{alert.message} Sending is held: scheduling, starting and resuming are "
                "refused until an admin acknowledges this alert on the campaign page."
            )
        else:
            ack = alert.acknowledgement
            message = f"{alert.message} Acknowledged: sending may go on."
            details.append(
                f"Acknowledged by {ack.acknowledged_by or 'a deleted user'} on "
                f"{ack.acknowledged_at:%Y-%m-%d %H:%M} UTC at {ack.rate:.2%}: “{ack.note}”"
            )
        out.append(Finding(f"reputation.{alert.metric}", WARNING, message, details))
    return out


def _aligned(a: str, b: str) -> bool:
    """Relaxed DMARC alignment, approximated: the same domain, or one inside the other."""
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def from_domain_findings(campaign: Campaign) -> list[Finding]:
    """The From domain: a mailbox provider's (cannot be authenticated), not one this app
    sends as, or one whose stored DNS checks fail."""
    domain = campaign.from_email.rpartition("@")[2].strip().lower()
    if not domain:
        return []
    if mailbox_provider_of(domain):
        return [
            Finding(
                "from.mailbox_provider",
                WARNING,
                f"The From address is at {domain}, a mailbox provider: mail sent from here "
                f"cannot be authenticated as {domain}, and its DMARC policy has receivers "
                "reject or junk mail that claims to be from it but comes from elsewhere. "
                "Send from a domain of your own.",
            )
        ]
    out = []
    configured = {
        d.strip().lower()
        for d in SendingConnection.objects.exclude(sending_domain="").values_list(
            "sending_domain", flat=True
        )
    } | {d.lower() for d in SendingDomain.objects.values_list("domain", flat=True)}
    connection_domain = (
        campaign.connection.sending_domain.strip().lower()
        if campaign.connection is not None
        else ""
    )
    if not any(_aligned(domain, d) for d in configured):
        out.append(
            Finding(
                "from.unconfigured",
                WARNING,
                f"{domain} is not a configured sending domain: no connection sends as it and "
                "its DNS (SPF, DKIM, DMARC) is not checked. Add it on the sending domains page, "
                "or send from one that is.",
                [f"Configured: {', '.join(sorted(configured))}."]
                if configured
                else ["No sending domain is configured yet."],
            )
        )
    elif connection_domain and not _aligned(domain, connection_domain):
        out.append(
            Finding(
                "from.misaligned",
                WARNING,
                f"The connection “{campaign.connection}” sends as {connection_domain}, but the "
                f"From address is at {domain}: DMARC checks the From domain, so receivers see "
                "mail it does not authenticate.",
            )
        )
    checked = (
        SendingDomain.objects.filter(domain__iexact=domain, checked_at__isnull=False)
        .only("domain", "results", "checked_at")
        .first()
    )
    failing = [r for r in (checked.results if checked else []) if r.get("status") == "fail"]
    if checked is not None and failing:
        out.append(
            Finding(
                "from.dns",
                WARNING,
                f"{len(failing)} DNS check{pluralize(len(failing))} of {domain} "
                f"fail{pluralize(len(failing), 's,')} (checked "
                f"{checked.checked_at:%Y-%m-%d %H:%M} UTC): receivers may reject or junk this "
                "mail. Fix them, then check again on the sending domains page.",
                [
                    f"{r.get('name', '?')}: {r.get('detail', '')}"
                    + (f" Fix: {r['fix']}" if r.get("fix") else "")
                    for r in failing
                ],
            )
        )
    return out


# --- blocklists: the sending IPs, every domain the mail links to ----------------------------


def blocklist_findings(campaign: Campaign, *, html: str, text: str) -> list[Finding]:
    """The dedicated IPs of the campaign's sending domain on DNS blocklists, and every domain
    its mail links to (the destinations, the tracking domain, images) on URI blocklists:
    asked now, all at once, each distinct name once, with a short timeout. Receivers that
    use these lists refuse or junk the mail whatever it says."""
    names = {campaign.from_email.rpartition("@")[2].strip().lower()}
    if campaign.connection is not None:
        names.add(campaign.connection.sending_domain.strip().lower())
    ips: dict[str, str] = {}
    for domain in SendingDomain.objects.filter(domain__in=names - {""}).order_by("domain"):
        for ip in domain.sending_ips.split(","):
            if ip.strip():
                ips.setdefault(ip.strip(), domain.domain)
    version = _version(campaign)
    destinations = compile_version(version, track_links=True).links if version else ()
    domains = link_domains([*destinations, *message_urls(html=html, text=text)])
    found = listings(
        ips=ips,
        domains=domains,
        r=resolver(lifetime=min(PREFLIGHT_LIFETIME, settings.DNS_LIFETIME_SECONDS)),
    )
    out, unchecked = [], []
    for listing in found:
        if listing.status == UNKNOWN:
            unchecked.append(f"{listing.target} on {listing.blocklist}: {listing.detail}")
            continue
        if listing.status not in (WARN, FAIL):
            continue
        details = [listing.detail]
        if listing.txt:
            details.append(f"The list says: “{listing.txt}”")
        details.append(f"How to get delisted: {listing.delist}")
        if listing.target in ips:
            where = f"The sending IP {listing.target} (of {ips[listing.target]})"
            if listing.status == FAIL:
                code, severity = "blocklist.ip", BLOCKING
                message = (
                    f"{where} is listed on {listing.blocklist}: receivers that use it refuse "
                    "or junk this mail."
                )
            else:
                code, severity = "blocklist.ip_policy", WARNING
                message = (
                    f"{where} is on {listing.blocklist}'s policy list: some receivers refuse "
                    "mail sent straight from such addresses."
                )
        else:
            hosts = sorted(domains.get(listing.target, ()))
            where = f"The link domain {listing.target}"
            if hosts != [listing.target]:
                where += f" (of {', '.join(hosts)})"
            if listing.status == FAIL:
                code, severity = "blocklist.domain", BLOCKING
                message = (
                    f"{where} is listed on {listing.blocklist}: receivers that use it junk or "
                    "refuse mail that links to it. Remove the links, or get it delisted."
                )
            else:
                code, severity = "blocklist.domain_policy", WARNING
                message = f"{where} is on {listing.blocklist}'s watch list."
        out.append(Finding(code, severity, message, details, link=listing.delist_url))
    if unchecked:
        out.append(
            Finding(
                "blocklist.unchecked",
                INFO,
                f"{len(unchecked)} blocklist lookup{pluralize(len(unchecked))} could not be "
                "made: this says nothing about a listing either way.",
                unchecked,
            )
        )
    return out


# --- all --------------------------------------------------------------------------------------


def sample_message(campaign: Campaign):
    sub = audience_queryset(campaign).order_by("pk").first() or Subscriber(
        pk=0, email="sample@example.com"
    )
    factory = MessageFactory(campaign, test_send=True)
    return factory.build(
        delivery_id=None,
        subscriber_id=sub.pk or 0,
        email=sub.email,
        recipient=recipient_context(sub),
    )


def run_preflight(campaign: Campaign, *, check_links: bool = True) -> list[Finding]:
    findings: list[Finding] = []
    if not campaign.template_id:
        return [Finding("content.missing", BLOCKING, "Choose a template.")]
    version = _version(campaign)
    if version is None:
        return [Finding("content.unsaved", BLOCKING, "The template has no saved version.")]
    if not campaign.from_email:
        findings.append(Finding("settings.from", BLOCKING, "Set the From address."))
    if not audience_queryset(campaign).exists():
        findings.append(Finding("audience.empty", BLOCKING, "The audience is empty."))
    findings += reputation_findings(campaign)
    findings += from_domain_findings(campaign)
    findings += lint_findings(campaign)
    findings += personalization_findings(campaign)
    message = sample_message(campaign)
    unsubscribe = message.headers["List-Unsubscribe"].split(">")[0].lstrip("<")
    findings += spam_findings(
        subject=message.subject, html=message.html, text=message.text, unsubscribe_url=unsubscribe
    )
    findings += size_findings(message.html)
    if check_links:
        # Cached by the URLs themselves: the same links are not fetched again for 10 minutes.
        urls = compile_version(version, track_links=True).links
        allow = getattr(settings, "LINK_CHECK_ALLOW_PRIVATE", False)
        digest = hashlib.sha256(f"{allow}\n{chr(10).join(urls)}".encode()).hexdigest()
        key = f"nfm:preflight-links:{digest}"
        links = cache.get(key)
        if links is None:
            links = link_findings(campaign)
            cache.set(key, links, timeout=600)
        findings += links
        findings += blocklist_findings(campaign, html=message.html, text=message.text)
    return findings


def blocking_findings(campaign: Campaign, *, check_links: bool = False) -> list[Finding]:
    return [f for f in run_preflight(campaign, check_links=check_links) if f.severity == BLOCKING]
