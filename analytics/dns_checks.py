"""DNS checks of a sending domain: SPF, DKIM, DMARC, MX and reverse DNS, each pass / warn /
fail with how to fix it. dnspython, through one resolver built from the settings (tests point
it at a DNS server on loopback)."""

import functools
import ipaddress
import logging
from dataclasses import asdict, dataclass

import dns.exception
import dns.resolver
import dns.reversename
from django.conf import settings
from django.utils import timezone
from publicsuffixlist import PublicSuffixList

from campaigns.models import SendingConnection

from . import dkim
from .models import SendingDomain

log = logging.getLogger(__name__)
PASS, WARN, FAIL, INFO = "pass", "warn", "fail", "info"
UNKNOWN = "unknown"  # no answer (offline, timeouts): "could not check", never "fail"
RANK = {INFO: 0, UNKNOWN: 0, PASS: 0, WARN: 1, FAIL: 2}
SPF_MAX_LOOKUPS = 10  # RFC 7208 §4.6.4
SPF_MAX_VOID = 2


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def resolver(*, lifetime: float | None = None) -> dns.resolver.Resolver:
    """A resolver on DNS_NAMESERVERS (else the system's) that gives up on a question after
    ``lifetime`` seconds (default DNS_LIFETIME_SECONDS)."""
    if lifetime is None:
        lifetime = float(settings.DNS_LIFETIME_SECONDS)
    if not settings.DNS_NAMESERVERS:
        r = dns.resolver.Resolver()
    else:
        r = dns.resolver.Resolver(configure=False)
        r.nameservers, ports = [], set()
        for entry in settings.DNS_NAMESERVERS:
            host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
            r.nameservers.append(host)
            if port:
                ports.add(int(port))
        if ports:
            r.port = ports.pop()
    r.lifetime = lifetime
    r.timeout = min(2.0, lifetime)
    return r


def _txt(r, name: str) -> list[str]:
    try:
        answer = r.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    return [b"".join(rdata.strings).decode(errors="replace") for rdata in answer]


def spf_lookups(r, domain: str) -> tuple[int, int, str]:
    """(DNS lookups, void lookups, what is broken) of ``domain``'s SPF policy, counted the way
    receivers count them (RFC 7208 §4.6.4): include, a, mx, ptr, exists and redirect each
    cost one, through every include and redirect, each name visited once."""
    lookups = voids = 0
    seen: set[str] = set()

    def walk(name: str) -> str:
        nonlocal lookups, voids
        name = name.lower().rstrip(".")
        if name in seen:
            return f"{name} includes itself"
        seen.add(name)
        records = [t for t in _txt(r, name) if t.lower().startswith("v=spf1")]
        if not records:
            voids += 1
            return ""
        if len(records) > 1:
            return f"{name} has {len(records)} SPF records"
        for term in records[0].split()[1:]:
            term = term.lower().lstrip("+-~?")
            mechanism, _, target = term.partition(":")
            if term.startswith("redirect="):
                lookups += 1
                broken = walk(term.partition("=")[2])
                if broken:
                    return broken
            elif mechanism == "include":
                lookups += 1
                if not [t for t in _txt(r, target) if t.lower().startswith("v=spf1")]:
                    return f"include:{target} has no SPF record"
                seen.discard(target.rstrip("."))
                broken = walk(target)
                if broken:
                    return broken
            elif mechanism.split("/")[0] in {"a", "mx", "ptr", "exists"}:
                lookups += 1
                if mechanism.split("/")[0] in {"a", "mx"} and target:
                    rtype = "A" if mechanism.startswith("a") else "MX"
                    try:
                        r.resolve(target.split("/")[0], rtype)
                    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                        voids += 1
            if lookups > 50:
                break
        return ""

    broken = walk(domain)
    return lookups, voids, broken


def check_spf(r, domain: str, include: str) -> Check:
    records = [t for t in _txt(r, domain) if t.lower().startswith("v=spf1")]
    wanted = f"include:{include}" if include else "include:<your ESP>"
    if not records:
        return Check(
            "SPF",
            FAIL,
            f"No SPF record on {domain}.",
            f'Add a TXT record on {domain}: "v=spf1 {wanted} ~all".',
        )
    if len(records) > 1:
        return Check(
            "SPF",
            FAIL,
            f"{len(records)} SPF records: receivers treat that as an error.",
            "Merge them into one TXT record starting with v=spf1.",
        )
    record = records[0]
    terms = record.lower().split()
    if include and not any(
        t.lstrip("+") in (f"include:{include.lower()}", f"redirect={include.lower()}")
        for t in terms
    ):
        return Check(
            "SPF",
            FAIL,
            f"SPF does not cover your ESP ({include}): {record}",
            f"Add {wanted} before the final all in: {record}",
        )
    lookups, voids, broken = spf_lookups(r, domain)
    if broken:
        return Check(
            "SPF",
            FAIL,
            f"SPF is broken ({broken}): receivers treat it as a permanent error.",
            "Fix or remove that include.",
        )
    if lookups > SPF_MAX_LOOKUPS:
        return Check(
            "SPF",
            FAIL,
            f"SPF needs {lookups} DNS lookups (includes counted all the way down); receivers "
            f"stop at {SPF_MAX_LOOKUPS} and treat it as a permanent error: {record}",
            "Remove includes you no longer use, or replace some with ip4:/ip6: ranges.",
        )
    if voids > SPF_MAX_VOID:
        return Check(
            "SPF",
            FAIL,
            f"SPF makes {voids} lookups that find nothing (at most {SPF_MAX_VOID} allowed).",
            "Remove the includes and a:/mx: terms that point at names without records.",
        )
    if "+all" in terms or "all" in terms:
        return Check(
            "SPF",
            FAIL,
            f"SPF allows the whole internet to send: {record}",
            "End the record with ~all or -all.",
        )
    if not any(t in ("~all", "-all") for t in terms) and not any(
        t.startswith("redirect=") for t in terms
    ):
        return Check(
            "SPF",
            WARN,
            f"SPF ends neutrally (?all or nothing): {record}",
            "End the record with ~all (soft fail) or -all.",
        )
    return Check("SPF", PASS, record)


def dkim_record(r, name: str) -> dict[str, str] | None:
    """The tags of the DKIM key record at ``name`` (TXT strings joined), or None."""
    records = [t for t in _txt(r, name) if "p=" in t]
    if not records:
        return None
    return {
        k.strip(): v.strip()
        for k, _, v in (part.partition("=") for part in records[0].split(";"))
        if k.strip()
    }


def check_dkim(r, domain: str, selector: str, expected: str | None = None) -> Check:
    """``expected``: the p= value of the app's own key for this selector, when it signs."""
    if not selector:
        return Check(
            "DKIM",
            WARN,
            "No DKIM selector configured, so it cannot be checked.",
            "Generate a key on this page (mail sent over SMTP), or enter the selector your "
            "ESP gave you (e.g. k1, pm, s1).",
        )
    name = f"{selector}._domainkey.{domain}"
    tags = dkim_record(r, name)
    if tags is None:
        try:
            r.resolve(name, "CNAME")
            return Check(
                "DKIM",
                WARN,
                f"{name} is a CNAME whose target has no DKIM key.",
                "Check the CNAME target your ESP asked for.",
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            pass
        return Check(
            "DKIM",
            FAIL,
            f"No DKIM key at {name}.",
            f"Publish the TXT (or CNAME) record shown for this key at {name}.",
        )
    published = "".join(tags.get("p", "").split())
    if not published:
        return Check(
            "DKIM",
            FAIL,
            f"The DKIM key at {name} is revoked (empty p=).",
            "Publish the current public key.",
        )
    algorithm = tags.get("k", "rsa")
    if expected is not None and published != expected:
        return Check(
            "DKIM",
            FAIL,
            f"The key published at {name} is not the key this app signs with: receivers "
            "will fail every signature.",
            "Publish the TXT record shown for this key (copy it again: DNS panels often cut "
            "long values).",
        )
    bits = dkim.public_key_bits(algorithm, published)
    if bits is None:
        return Check(
            "DKIM",
            FAIL,
            f"The key at {name} cannot be read ({algorithm}).",
            "Publish the record again, in one piece.",
        )
    if algorithm == "rsa" and bits < 1024:
        return Check(
            "DKIM",
            FAIL,
            f"The RSA key at {name} has {bits} bits: receivers ignore keys under 1024 bits.",
            "Generate a 2048-bit key and publish it.",
        )
    if algorithm == "rsa" and bits < 2048:
        return Check(
            "DKIM",
            WARN,
            f"The RSA key at {name} has {bits} bits; 2048 is the norm now.",
            "Rotate to a 2048-bit key.",
        )
    return Check("DKIM", PASS, f"Key published at {name} ({algorithm}, {bits} bits).")


def organisational_domain(domain: str) -> str:
    """The registrable domain (Public Suffix List): news.example.co.uk -> example.co.uk."""
    return registered_domain(domain) or domain


def registered_domain(domain: str) -> str | None:
    """As organisational_domain, but None for a name nobody can register (localhost, co.uk)."""
    return _psl().privatesuffix(domain.lower().rstrip("."))


@functools.cache
def _psl():
    return PublicSuffixList()


def check_dmarc(r, domain: str) -> Check:
    records = [t for t in _txt(r, f"_dmarc.{domain}") if t.upper().startswith("V=DMARC1")]
    where = domain
    if not records:
        # RFC 7489 §6.6.3: a subdomain without a record uses its organisational domain's.
        org = organisational_domain(domain)
        if org != domain:
            records = [t for t in _txt(r, f"_dmarc.{org}") if t.upper().startswith("V=DMARC1")]
            where = org
    if len(records) > 1:
        return Check(
            "DMARC",
            FAIL,
            f"{len(records)} DMARC records at _dmarc.{where}: receivers ignore them all.",
            "Keep one TXT record starting with v=DMARC1.",
        )
    if not records:
        return Check(
            "DMARC",
            FAIL,
            f"No DMARC record at _dmarc.{domain}.",
            f'Add a TXT record at _dmarc.{domain}: "v=DMARC1; p=none; '
            f'rua=mailto:dmarc@{domain}", then move to p=quarantine.',
        )
    tags = {
        k.strip().lower(): v.strip()
        for k, _, v in (part.partition("=") for part in records[0].split(";"))
        if k.strip()
    }
    policy = tags.get("p", "").lower()
    alignment = (
        f"alignment: DKIM {'strict' if tags.get('adkim') == 's' else 'relaxed'}, "
        f"SPF {'strict' if tags.get('aspf') == 's' else 'relaxed'}"
    )
    if policy not in ("none", "quarantine", "reject"):
        return Check(
            "DMARC",
            FAIL,
            f"DMARC has no valid policy: {records[0]}",
            "Set p=none, p=quarantine or p=reject.",
        )
    if policy == "none":
        return Check(
            "DMARC",
            WARN,
            f"DMARC policy is p=none (monitoring only); {alignment}.",
            "Once reports show your mail aligns, move to p=quarantine.",
        )
    if tags.get("pct", "100") != "100":
        return Check(
            "DMARC",
            WARN,
            f"DMARC applies to {tags['pct']} % only; {alignment}.",
            "Raise pct to 100 (or remove it).",
        )
    warn_strict = tags.get("adkim") == "s" or tags.get("aspf") == "s"
    return Check(
        "DMARC",
        PASS,
        f"p={policy}; {alignment}."
        + (
            " Strict alignment: your ESP must sign with exactly this domain." if warn_strict else ""
        ),
    )


def check_bounce_domain(r, domain: str) -> Check:
    """DMARC judges SPF on the envelope (Return-Path) domain: the VERP bounce domain must have
    its own SPF and share the From domain's organisational domain."""
    bounce = (settings.BOUNCE_DOMAIN or "").lower().rstrip(".")
    if not bounce:
        return Check(
            "Bounce domain",
            INFO,
            "No bounce domain set: SMTP mail goes out with the From address as envelope sender.",
            "Set BOUNCE_DOMAIN (e.g. bounces." + domain + ") to get bounces back by mail.",
        )
    if organisational_domain(bounce) != organisational_domain(domain):
        return Check(
            "Bounce domain",
            WARN,
            f"{bounce} is not under {organisational_domain(domain)}: SPF cannot align for DMARC.",
            f"Use a bounce domain under {organisational_domain(domain)}, e.g. bounces.{domain}.",
        )
    spf = check_spf(r, bounce, "")
    return Check("Bounce domain", spf.status, f"{bounce}: {spf.detail}", spf.fix)


def check_mx(r, domain: str) -> Check:
    try:
        answer = r.resolve(domain, "MX")
        hosts = sorted({(rd.preference, str(rd.exchange).rstrip(".")) for rd in answer})
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        hosts = []
    if not hosts or hosts == [(0, "")]:
        return Check(
            "MX",
            FAIL,
            f"{domain} has no MX: replies and bounces cannot reach you, "
            "and some receivers reject such senders.",
            f"Add MX records to {domain}.",
        )
    names = ", ".join(f"{h} ({p})" for p, h in hosts)
    if len({h for _, h in hosts}) < 2:
        # One MX is fine: senders queue and retry; a backup MX is advice, not a fault.
        return Check("MX", PASS, f"{names}. (A backup MX is optional.)")
    return Check("MX", PASS, f"{names}.")


def check_reverse_dns(r, ips: list[str]) -> Check:
    if not ips:
        return Check(
            "Reverse DNS",
            INFO,
            "No dedicated sending IPs entered (shared ESP IPs are your ESP's to keep).",
            "Enter your dedicated IPs to check them.",
        )
    problems: list[str] = []
    good: list[str] = []
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            problems.append(f"{ip} is not an IP address")
            continue
        try:
            names = [str(p).rstrip(".") for p in r.resolve(dns.reversename.from_address(ip), "PTR")]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            problems.append(f"{ip} has no PTR record")
            continue
        confirmed = False
        for name in names:
            try:
                rtype = "AAAA" if ":" in ip else "A"
                if ip in {str(a) for a in r.resolve(name, rtype)}:
                    confirmed = True
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                pass
        (good if confirmed else problems).append(
            f"{ip} → {', '.join(names)}" + ("" if confirmed else " (does not resolve back)")
        )
    if problems:
        return Check(
            "Reverse DNS",
            FAIL,  # a PTR that does not resolve back is as bad as none to receivers
            "; ".join(problems + good),
            "Ask your hosting provider to set each IP's PTR to a name whose A record "
            "is that IP (forward-confirmed reverse DNS).",
        )
    return Check("Reverse DNS", PASS, "; ".join(good))


def sending_domain_check(*, domain: SendingDomain, r=None) -> list[Check]:
    r = r or resolver()
    ips = [ip.strip() for ip in domain.sending_ips.split(",") if ip.strip()]
    own = dict(
        domain.dkim_keys.filter(state__in=["active", "pending", "retiring"]).values_list(
            "selector", "public_key"
        )
    )
    checks = []
    for name, run in (
        ("SPF", lambda: check_spf(r, domain.domain, domain.spf_include)),
        (
            "DKIM",
            lambda: check_dkim(
                r, domain.domain, domain.dkim_selector, expected=own.get(domain.dkim_selector)
            ),
        ),
        ("DMARC", lambda: check_dmarc(r, domain.domain)),
        ("MX", lambda: check_mx(r, domain.domain)),
        ("Reverse DNS", lambda: check_reverse_dns(r, ips)),
        ("Bounce domain", lambda: check_bounce_domain(r, domain.domain)),
    ):
        try:
            checks.append(run())
        except dns.exception.DNSException as exc:
            # No answer at all (offline, timeouts, no nameserver): nothing is known.
            checks.append(
                Check(
                    name,
                    UNKNOWN,
                    f"Could not check: no DNS answer ({exc.__class__.__name__}).",
                    "Try again later; if it persists, check this server's DNS resolvers.",
                )
            )
    domain.results = [asdict(c) for c in checks]
    domain.checked_at = timezone.now()
    domain.status = domain_status(domain)
    domain.save(update_fields=["status", "results", "checked_at"])
    return checks


def domain_status(domain: SendingDomain) -> str:
    """The worst of a domain's stored results: its DNS checks, and its IPs' blocklist
    listings (analytics.blocklists). A blocklist that could not be asked (Barracuda answers
    registered resolvers only) says nothing about the domain: only listings count there."""
    statuses = [r.get("status", UNKNOWN) for r in domain.results]
    statuses += [
        r.get("status") for r in domain.blocklist_results if RANK.get(r.get("status"), 0) > 0
    ]
    if not statuses:
        return SendingDomain.Status.UNCHECKED
    worst = max(RANK.get(s, 0) for s in statuses)
    if worst == 0 and UNKNOWN in statuses:
        return SendingDomain.Status.UNCHECKED  # "could not check", not "pass"
    return {0: PASS, 1: WARN, 2: FAIL}[worst]


def sending_domains_sync() -> None:
    """A SendingDomain row for every domain the connections send from."""
    for name in SendingConnection.objects.exclude(sending_domain="").values_list(
        "sending_domain", flat=True
    ):
        SendingDomain.objects.get_or_create(domain=name.strip().lower())


def sending_domains_check() -> int:
    sending_domains_sync()
    r = resolver()
    n = 0
    for domain in SendingDomain.objects.all():
        sending_domain_check(domain=domain, r=r)
        n += 1
    return n
