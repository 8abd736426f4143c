"""Human, privacy proxy or security scanner: the rules that tell who opened or clicked.

Pure functions over the raw facts kept on every Event (IP, user agent, HTTP method, prefetch
hint, seconds since the message was sent, how many links the same recipient hit at once), so
that a rule change can be re-run over history (``services.events_reclassify``).

Proxies fetch images on the recipient's behalf (Apple Mail Privacy Protection fetches every
image of every message, opened or not): an open through a proxy proves nothing about a human.
Scanners (Microsoft Safe Links, Proofpoint URL Defense, Mimecast, Barracuda ...) follow every
link of a message seconds after delivery to check for malware: their clicks are not people.
"""

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

RULES_VERSION = 1

HUMAN = "human"
PROXY = "proxy"
SCANNER = "scanner"

# Published or widely observed egress networks. A list, not a guarantee: the user agent and
# timing rules catch what the networks miss.
PROXY_NETWORKS = {
    "Apple Mail Privacy Protection": ["17.0.0.0/8"],
    "Google image proxy": ["66.102.0.0/20", "66.249.64.0/19", "64.233.160.0/19"],
    "Yahoo mail proxy": ["98.136.0.0/14", "74.6.0.0/16"],
}
SCANNER_NETWORKS = {
    "Microsoft Safe Links / EOP": [
        "40.92.0.0/15",
        "40.107.0.0/16",
        "52.100.0.0/14",
        "104.47.0.0/17",
        "2a01:111:f400::/48",
    ],
    "Proofpoint": [
        "67.231.144.0/20",
        "148.163.128.0/19",
        "205.220.160.0/19",
        "208.84.65.0/24",
        "208.86.202.0/24",
    ],
    "Mimecast": [
        "205.139.110.0/24",
        "207.211.30.0/24",
        "207.211.31.0/25",
        "170.10.128.0/22",
        "146.101.78.0/24",
        "185.58.84.0/22",
    ],
    "Barracuda": ["64.235.144.0/20", "209.222.80.0/21", "35.170.131.0/24", "3.93.7.0/24"],
    "Cisco IronPort": ["68.232.128.0/19", "139.138.32.0/19"],
}

PROXY_AGENTS = [
    ("Google image proxy", re.compile(r"GoogleImageProxy|ggpht\.com", re.I)),
    ("Yahoo mail proxy", re.compile(r"YahooMailProxy", re.I)),
    ("Outlook image proxy", re.compile(r"OutlookImageProxy|Microsoft Office Protocol Discovery")),
]
SCANNER_AGENTS = [
    ("Barracuda", re.compile(r"Barracuda", re.I)),
    ("Mimecast", re.compile(r"Mimecast", re.I)),
    ("Proofpoint", re.compile(r"Proofpoint|urldefense", re.I)),
    ("Microsoft Safe Links", re.compile(r"SafeLinks|MSOffice.*Scanner", re.I)),
    ("headless browser", re.compile(r"HeadlessChrome|PhantomJS|Puppeteer|Playwright", re.I)),
    (
        "HTTP library",
        re.compile(r"python-requests|python-urllib|curl/|Wget|Go-http-client|okhttp|Java/", re.I),
    ),
    ("bot", re.compile(r"bot\b|spider|crawler|scanner|preview|facebookexternalhit", re.I)),
]
# Apple's proxy sends a bare, versionless WebKit agent, unlike Mail.app or Safari.
APPLE_PROXY_AGENT = re.compile(r"^Mozilla/5\.0$|AppleWebKit/605\.1\.15 \(KHTML, like Gecko\)$")

# A click this soon after sending is a scanner: nobody reads and clicks within seconds.
SCANNER_CLICK_SECONDS = 10
# Several different links of one message (or all of them, if fewer) clicked within this
# window: a scanner walking them.
BURST_SECONDS = 5
BURST_LINKS = 3


@dataclass(frozen=True, slots=True)
class Facts:
    kind: str  # "opened" or "clicked"
    ip: str | None = None
    user_agent: str = ""
    method: str = "GET"
    prefetch: bool = False
    seconds_since_sent: float | None = None
    links_in_burst: int = 1  # distinct links of this delivery clicked within BURST_SECONDS
    links_in_message: int = 0  # how many tracked links the message has (0: unknown)


@dataclass(frozen=True, slots=True)
class Verdict:
    classification: str
    reason: str


@lru_cache(maxsize=1)
def _networks():
    out = []
    for label, nets in PROXY_NETWORKS.items():
        out += [(ipaddress.ip_network(n), PROXY, label) for n in nets]
    for label, nets in SCANNER_NETWORKS.items():
        out += [(ipaddress.ip_network(n), SCANNER, label) for n in nets]
    return out


@lru_cache(maxsize=65536)
def network_of(ip: str | None) -> tuple[str, str] | None:
    """(classification, label) of a known proxy or scanner network, else None."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    for network, kind, label in _networks():
        if address.version == network.version and address in network:
            return kind, label
    return None


@lru_cache(maxsize=8192)
def _agent_labels(agent: str, kind: str) -> tuple[str, str]:
    """(scanner label, proxy label) a user agent matches, '' for none. Cached: a campaign's
    hits come from a few hundred distinct agents, not one per hit."""
    scanner = next((label for label, p in SCANNER_AGENTS if p.search(agent)), "")
    proxy = next((label for label, p in PROXY_AGENTS if p.search(agent)), "")
    if not proxy and kind == "opened" and APPLE_PROXY_AGENT.search(agent):
        proxy = "Apple Mail Privacy Protection"
    return scanner, proxy


def classify(facts: Facts) -> Verdict:
    if facts.method.upper() == "HEAD":
        return Verdict(SCANNER, "HEAD request (link checker)")
    if facts.prefetch:
        return Verdict(SCANNER if facts.kind == "clicked" else PROXY, "prefetch request")
    known = network_of(facts.ip)
    if known and known[0] == SCANNER:
        return Verdict(SCANNER, f"network: {known[1]}")
    agent = facts.user_agent or ""
    scanner_agent, proxy_agent = _agent_labels(agent, facts.kind)
    if scanner_agent:
        return Verdict(SCANNER, f"user agent: {scanner_agent}")
    if facts.kind == "clicked":
        every_link = facts.links_in_message and facts.links_in_burst >= facts.links_in_message
        if facts.links_in_burst >= 2 and (facts.links_in_burst >= BURST_LINKS or every_link):
            return Verdict(SCANNER, f"{facts.links_in_burst} links clicked at once")
        if (
            facts.seconds_since_sent is not None
            and facts.seconds_since_sent < SCANNER_CLICK_SECONDS
        ):
            return Verdict(SCANNER, f"clicked {facts.seconds_since_sent:.0f}s after sending")
    if known and known[0] == PROXY:
        return Verdict(PROXY, f"network: {known[1]}")
    if proxy_agent:
        return Verdict(PROXY, f"user agent: {proxy_agent}")
    if not agent:
        return Verdict(SCANNER, "no user agent")
    return Verdict(HUMAN, "")


_CLIENTS = [
    ("Apple Mail", re.compile(r"AppleWebKit/605.*Mobile/|Macintosh.*AppleWebKit(?!.*Safari)")),
    ("Outlook", re.compile(r"Outlook|Microsoft Office|ms-office", re.I)),
    ("Thunderbird", re.compile(r"Thunderbird", re.I)),
    ("Gmail", re.compile(r"GoogleImageProxy", re.I)),
    ("Yahoo Mail", re.compile(r"YahooMailProxy", re.I)),
    ("Edge", re.compile(r"Edg/")),
    ("Firefox", re.compile(r"Firefox/")),
    ("Chrome", re.compile(r"Chrome/")),
    ("Safari", re.compile(r"Safari/")),
]


@lru_cache(maxsize=8192)
def mail_client(user_agent: str) -> str:
    for label, pattern in _CLIENTS:
        if pattern.search(user_agent or ""):
            return label
    return "Other" if user_agent else "Unknown"


@lru_cache(maxsize=8192)
def device(user_agent: str) -> str:
    agent = user_agent or ""
    if re.search(r"iPad|Tablet", agent):
        return "Tablet"
    if re.search(r"Mobile|iPhone|Android", agent):
        return "Mobile"
    if not agent:
        return "Unknown"
    return "Desktop"
