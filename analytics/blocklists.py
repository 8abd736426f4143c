"""DNS blocklists: the sending IPs against DNSBLs (Spamhaus ZEN, SpamCop, Barracuda) and the
link domains of a campaign against URI blocklists (Spamhaus DBL, SURBL, URIBL).

Receivers that use a list junk or refuse mail from a listed IP, or mail that links to a listed
domain, whatever its content: a listing is worth knowing before a campaign goes out, with what
it means and where to ask for removal. The lists answer over DNS: ``<reversed IP or
domain>.<zone>`` has no record when not listed, and a 127.x.y.z address when listed, whose last
octets say why. Some lists answer a query they refuse (through a public resolver, with no key,
over the free volume) with a code of their own: that is "could not check", never a listing, as
is no answer at all. The zones are settings (DNSBL_ZONES, URIBL_ZONES): Spamhaus asks
commercial users for a key, which goes into the zone name itself, so pages show the list's
name, never the zone."""

import ipaddress
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import dns.exception
import dns.resolver
from django.conf import settings
from django.utils import timezone

from .dns_checks import FAIL, PASS, UNKNOWN, WARN, domain_status, registered_domain, resolver
from .models import SendingDomain

# Pre-flight waits at most this long for the lists (the beat check takes the default).
PREFLIGHT_LIFETIME = 3.0
_PARALLEL = 32


@dataclass
class Listing:
    """One target (an IP or a registered domain) looked up in one blocklist."""

    target: str
    blocklist: str  # the list's name, never the zone (it may hold a key)
    status: str  # pass (not listed) / warn (a policy listing) / fail / unknown
    detail: str  # what the answer means
    txt: str = ""  # the list's own explanation, when listed
    delist: str = ""  # how to get off it
    delist_url: str = ""  # the list's lookup / removal page for the target


@dataclass(frozen=True)
class Blocklist:
    name: str
    suffixes: tuple[str, ...]
    decode: Callable[[list[str]], tuple[str, str]]  # answers -> (status, meaning)
    delist: str  # how to get off it
    delist_url: str  # its lookup / removal page; {target} is the IP or domain


def _octets(codes: list[str]) -> list[tuple[int, int]]:
    """(third, fourth) octet of each 127.x.y.z answer."""
    out = []
    for code in codes:
        parts = code.split(".")
        out.append((int(parts[2]), int(parts[3])))
    return out


def _spamhaus_refusal(codes: list[str]) -> tuple[str, str] | None:
    # https://www.spamhaus.org/faqs/domain-blocklist/#291 (the 127.255.255.x error codes)
    reasons = {
        "127.255.255.250": "the Data Query Service key in the zone is not valid",
        "127.255.255.252": "the zone name has a typo",
        "127.255.255.254": "the query came through a public or unattributable resolver "
        "(8.8.8.8, 1.1.1.1, a large ISP's): Spamhaus refuses those",
        "127.255.255.255": "too many queries: over the free use limit",
    }
    refused = [reasons.get(c, f"error code {c}") for c in codes if c.startswith("127.255.255.")]
    if not refused:
        return None
    return UNKNOWN, (
        f"Could not check: Spamhaus refused the query ({'; '.join(refused)}). Use a resolver "
        "of your own (DNS_NAMESERVERS) and, for commercial use, a free Data Query Service "
        "key: its zones look like <key>.zen.dq.spamhaus.net."
    )


ZEN_CODES = {
    2: (FAIL, "SBL: a known spam source or spam operation (Spamhaus Block List)."),
    3: (FAIL, "CSS: Spamhaus saw low-reputation or snowshoe sending from this IP (SBL CSS)."),
    4: (
        FAIL,
        "XBL: the IP is exploited: an infected machine, open proxy or hijacked account "
        "sends from it.",
    ),
    9: (FAIL, "DROP: the IP is in a hijacked or spammer-run network (Don't Route Or Peer)."),
    10: (
        WARN,
        "PBL (listed by the network's owner): this range should not send mail straight "
        "to the internet. A policy listing, not a sign of abuse.",
    ),
    11: (
        WARN,
        "PBL (listed by Spamhaus): a range of dynamic or end-user addresses that "
        "should not send mail straight to the internet. A policy listing, not a sign of "
        "abuse.",
    ),
}


def _decode_zen(codes: list[str]) -> tuple[str, str]:
    refused = _spamhaus_refusal(codes)
    if refused:
        return refused
    found = []
    for _, last in _octets(codes):
        code = 4 if 4 <= last <= 8 else last
        found.append(ZEN_CODES.get(code, (FAIL, f"Listed (return code 127.0.0.{last}).")))
    return _worst(found)


DBL_CODES = {
    2: (FAIL, "a spam domain"),
    4: (FAIL, "a phishing domain"),
    5: (FAIL, "a malware domain"),
    6: (FAIL, "a botnet command-and-control domain"),
    102: (FAIL, "a legitimate domain abused by spammers"),
    103: (FAIL, "a legitimate domain abused as a spammed redirector or URL shortener"),
    104: (FAIL, "a legitimate domain abused for phishing"),
    105: (FAIL, "a legitimate domain abused to spread malware"),
    106: (FAIL, "a legitimate domain abused for botnet command and control"),
}


def _decode_dbl(codes: list[str]) -> tuple[str, str]:
    refused = _spamhaus_refusal(codes)
    if refused:
        return refused
    found = []
    for third, last in _octets(codes):
        if third == 1 and last == 255:
            found.append((UNKNOWN, "Could not check: the DBL refuses IP addresses as names."))
            continue
        status, what = DBL_CODES.get(last, (FAIL, f"listed (return code 127.0.{third}.{last})"))
        found.append((status, f"Spamhaus DBL lists it as {what}."))
    return _worst(found)


SURBL_BITS = {
    8: "PH: phishing sites",
    16: "MW: malware sites",
    64: "ABUSE: spam and other abuse sites",
    128: "CR: cracked (compromised) sites",
}
URIBL_BITS = {
    2: (FAIL, "black: domains in spam (and nothing else)"),
    4: (WARN, "grey: bulk senders' domains, not necessarily spam (policy)"),
    8: (WARN, "red: domains newly seen in unsolicited mail, not judged yet"),
    16: (FAIL, "gold: domains of the paid feed"),
}


def _decode_surbl(codes: list[str]) -> tuple[str, str]:
    bits = 0
    for _, last in _octets(codes):
        bits |= last
    if bits == 1:
        # SURBL answers 127.0.0.1 to every query of a resolver it blocks.
        return UNKNOWN, (
            "Could not check: SURBL refused the query (public resolver or over the free "
            "volume). Use a resolver of your own (DNS_NAMESERVERS)."
        )
    names = [name for bit, name in SURBL_BITS.items() if bits & bit]
    names += [f"sub-list bit {bit}" for bit in (2, 4, 32) if bits & bit]
    return FAIL, f"SURBL lists it on {', '.join(names)}."


def _decode_uribl(codes: list[str]) -> tuple[str, str]:
    bits = 0
    for _, last in _octets(codes):
        bits |= last
    if bits & 1:
        # URIBL answers 127.0.0.1 to queries it refuses.
        return UNKNOWN, (
            "Could not check: URIBL refused the query (public resolver or over the free "
            "volume). Use a resolver of your own (DNS_NAMESERVERS)."
        )
    found = [value for bit, value in URIBL_BITS.items() if bits & bit]
    if not found:
        return FAIL, f"URIBL lists it (return code 127.0.0.{bits})."
    status = FAIL if any(s == FAIL for s, _ in found) else WARN
    return status, f"URIBL lists it on {'; '.join(what for _, what in found)}."


def _decode_listed(codes: list[str]) -> tuple[str, str]:
    return FAIL, f"Listed (return code {', '.join(codes)})."


def _worst(found: list[tuple[str, str]]) -> tuple[str, str]:
    rank = {UNKNOWN: 0, WARN: 1, FAIL: 2}
    status = max((s for s, _ in found), key=rank.__getitem__)
    return status, " ".join(dict.fromkeys(m for _, m in found))


BLOCKLISTS = (
    Blocklist(
        "Spamhaus DBL",
        ("dbl.spamhaus.org", "dbl.dq.spamhaus.net"),
        _decode_dbl,
        "Remove what the listing names (a compromised page, an open redirector, a spammer's "
        "content), then look the domain up on Spamhaus's page and request removal there.",
        "https://check.spamhaus.org/results/?query={target}",
    ),
    Blocklist(
        "Spamhaus ZEN",
        ("spamhaus.org", "spamhaus.net"),  # zen, sbl, xbl, pbl; public or DQS
        _decode_zen,
        "Fix the cause first (stop the spam, clean the infected machine), then look the IP up "
        "on Spamhaus's page and follow its removal steps. A PBL listing of your own mail "
        "server's static IP is removed on the same page.",
        "https://check.spamhaus.org/results/?query={target}",
    ),
    Blocklist(
        "SpamCop",
        ("bl.spamcop.net",),
        lambda codes: (FAIL, "SpamCop users reported spam from this IP in the last days."),
        "SpamCop listings expire by themselves 24 hours after the last report: find and stop "
        "what sends the reported mail.",
        "https://www.spamcop.net/bl.shtml?{target}",
    ),
    Blocklist(
        "Barracuda",
        ("b.barracudacentral.org",),
        lambda codes: (FAIL, "Barracuda's reputation system judged mail from this IP spam."),
        "Fix the cause, then request removal on Barracuda's page (it takes about a day).",
        "https://www.barracudacentral.org/rbl/removal-request",
    ),
    Blocklist(
        "SURBL",
        ("surbl.org",),
        _decode_surbl,
        "Remove the abuse (a phishing page, malware, a hacked site), then look the domain up "
        "and request removal on SURBL's page.",
        "https://surbl.org/surbl-analysis",
    ),
    Blocklist(
        "URIBL",
        ("uribl.com",),
        _decode_uribl,
        "Look the domain up and request removal on URIBL's page (a free account).",
        "https://admin.uribl.com/",
    ),
)


def _blocklist(zone: str) -> Blocklist:
    zone = zone.lower().rstrip(".")
    for known in BLOCKLISTS:
        if any(zone == s or zone.endswith("." + s) for s in known.suffixes):
            return known
    return Blocklist(
        zone,
        (zone,),
        _decode_listed,
        f"See the website of {zone} for what the code means and how to request removal.",
        "",
    )


def reversed_ip(ip: str) -> str:
    """192.0.2.1 -> 1.2.0.192; IPv6 as its 32 nibbles, reversed."""
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        return ".".join(reversed(str(address).split(".")))
    return ".".join(reversed(address.exploded.replace(":", "")))


def _lookup(r, target: str, name: str, zone: str) -> Listing:
    blocklist = _blocklist(zone)
    query = f"{name}.{zone}"
    try:
        codes = sorted(str(a) for a in r.resolve(query, "A"))
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return Listing(target, blocklist.name, PASS, "Not listed.")
    except (dns.exception.DNSException, OSError) as exc:
        return Listing(
            target,
            blocklist.name,
            UNKNOWN,
            f"Could not check: no DNS answer ({exc.__class__.__name__}).",
        )
    if not all(c.startswith("127.") for c in codes):
        return Listing(
            target,
            blocklist.name,
            UNKNOWN,
            f"Could not check: the answer ({', '.join(codes)}) is no blocklist code; the "
            "resolver may answer names that do not exist with its own address.",
        )
    status, meaning = blocklist.decode(codes)
    if status not in (WARN, FAIL):
        return Listing(target, blocklist.name, status, meaning)
    try:
        txt = " ".join(
            b"".join(rdata.strings).decode(errors="replace") for rdata in r.resolve(query, "TXT")
        )
    except (dns.exception.DNSException, OSError):
        txt = ""
    url = blocklist.delist_url.format(target=target)
    return Listing(target, blocklist.name, status, meaning, txt, blocklist.delist, url)


def _lookup_all(r, queries: list[tuple[str, str, str]]) -> list[Listing]:
    """Every (target, name, zone) at once: a pre-flight waits for the slowest list only."""
    if not queries:
        return []
    with ThreadPoolExecutor(max_workers=min(_PARALLEL, len(queries))) as pool:
        return list(pool.map(lambda q: _lookup(r, *q), queries))


def _ip_queries(ips: Iterable[str]) -> list[tuple[str, str, str]]:
    queries = []
    for ip in dict.fromkeys(ip.strip() for ip in ips if ip.strip()):
        try:
            name = reversed_ip(ip)
        except ValueError:
            continue  # not an IP: the reverse DNS check says so
        queries += [(ip, name, zone) for zone in settings.DNSBL_ZONES]
    return queries


def ip_listings(ips: Iterable[str], *, r=None) -> list[Listing]:
    """Each IP in each DNSBL_ZONES zone."""
    return _lookup_all(r or resolver(), _ip_queries(ips))


def listings(*, ips: Iterable[str], domains: Iterable[str], r=None) -> list[Listing]:
    """Each IP in each DNSBL_ZONES zone and each registered domain in each URIBL_ZONES zone,
    all at once."""
    queries = _ip_queries(ips) + [
        (domain, domain, zone) for domain in dict.fromkeys(domains) for zone in settings.URIBL_ZONES
    ]
    return _lookup_all(r or resolver(), queries)


_URL_RE = re.compile(r"""\bhttps?://([^/\s"'<>?#\\]+)""", re.IGNORECASE)
_ATTR_URL_RE = re.compile(r"""\b(?:href|src)\s*=\s*["']?(https?://[^"'\s>]+)""", re.IGNORECASE)


def message_urls(*, html: str, text: str) -> list[str]:
    """What a receiver's filter extracts from a message: the links and images of the HTML
    (not its doctype's or namespaces' URLs), and every URL of the text part."""
    return [*_ATTR_URL_RE.findall(html), text]


def link_domains(urls_or_text: Iterable[str]) -> dict[str, set[str]]:
    """{registered domain: the hosts seen under it} of every http(s) URL: URI blocklists
    list registered domains (shop.example for www.shop.example), not IP addresses."""
    out: dict[str, set[str]] = {}
    for chunk in urls_or_text:
        for found in _URL_RE.findall(chunk):
            host = (urlsplit(f"http://{found}").hostname or "").rstrip(".").lower()
            if not host or "." not in host:
                continue
            try:
                ipaddress.ip_address(host)
                continue
            except ValueError:
                pass
            registered = registered_domain(host)
            if registered:
                out.setdefault(registered, set()).add(host)
    return out


def sending_domain_blocklists_check(*, domain: SendingDomain, r=None) -> list[Listing]:
    """Look the domain's dedicated sending IPs up and keep the answers for the domains page
    (which shows them without asking the lists again)."""
    ips = [ip for ip in domain.sending_ips.split(",") if ip.strip()]
    listings = ip_listings(ips, r=r)
    domain.blocklist_results = [asdict(listing) for listing in listings]
    domain.blocklists_checked_at = timezone.now()
    domain.status = domain_status(domain)
    domain.save(update_fields=["blocklist_results", "blocklists_checked_at", "status"])
    return listings


def sending_domains_blocklists_check() -> int:
    """Beat: every sending domain (one without dedicated IPs just has its old answers
    cleared: shared ESP IPs are the ESP's to keep clean)."""
    r = resolver()
    n = 0
    for domain in SendingDomain.objects.all():
        sending_domain_blocklists_check(domain=domain, r=r)
        n += 1
    return n
