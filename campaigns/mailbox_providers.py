"""Domains of mailbox providers: addresses people get from a provider, not domains a sender
owns. Mail "from" one of them sent through anyone else's servers cannot be authenticated as
that domain (its SPF and DKIM are the provider's): their DMARC policies tell receivers to
reject or quarantine it (Yahoo and AOL publish p=reject), and Gmail, Yahoo and Microsoft
require bulk mail to pass DMARC aligned with its From domain. The pre-flight warns about a
From address at one of them.

The one maintained list: add a provider here. A family ("gmx") covers the provider's country
domains: gmx.de, gmx.net, gmx.co.uk ...
"""

MAILBOX_PROVIDER_DOMAINS = frozenset(
    {
        # Google
        "gmail.com",
        "googlemail.com",
        # Yahoo, AOL
        "ymail.com",
        "rocketmail.com",
        "aol.com",
        "aim.com",
        # Microsoft (hotmail.* and outlook.* below)
        "msn.com",
        "passport.com",
        "windowslive.com",
        "live.com",
        "live.fr",
        "live.de",
        "live.nl",
        "live.be",
        "live.it",
        "live.ca",
        "live.co.uk",
        "live.com.au",
        # Apple
        "icloud.com",
        "me.com",
        "mac.com",
        # Proton
        "proton.me",
        "protonmail.com",
        "protonmail.ch",
        "pm.me",
        # Germany
        "web.de",
        "t-online.de",
        "freenet.de",
        "mail.de",
        "posteo.de",
        # France
        "orange.fr",
        "wanadoo.fr",
        "free.fr",
        "laposte.net",
        "sfr.fr",
        "neuf.fr",
        "bbox.fr",
        # Russia
        "mail.ru",
        "inbox.ru",
        "list.ru",
        "bk.ru",
        "ya.ru",
        "rambler.ru",
        # Elsewhere
        "mail.com",
        "zoho.com",
        "zohomail.com",
        "tutanota.com",
        "tuta.io",
        "fastmail.com",
        "libero.it",
        "virgilio.it",
        "seznam.cz",
        "wp.pl",
        "o2.pl",
        "onet.pl",
        "interia.pl",
        "qq.com",
        "163.com",
        "126.com",
        "sina.com",
        "naver.com",
        "daum.net",
        "hanmail.net",
        "rediffmail.com",
        "uol.com.br",
        "bol.com.br",
        "terra.com.br",
        "comcast.net",
        "verizon.net",
        "att.net",
        "sbcglobal.net",
        "bellsouth.net",
        "cox.net",
        "btinternet.com",
        "sky.com",
        "virginmedia.com",
        "bigpond.com",
        "shaw.ca",
        "rogers.com",
        "sympatico.ca",
    }
)

# Providers with a domain per country: the family name, then a public suffix.
MAILBOX_PROVIDER_FAMILIES = frozenset({"yahoo", "hotmail", "outlook", "gmx", "yandex"})

# The second-level labels of country suffixes such as co.uk, com.br, co.jp, ne.jp.
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ne", "or"})


def mailbox_provider_of(domain: str) -> str | None:
    """The provider's name for the list or family the domain belongs to, else None."""
    domain = domain.strip().lower().rstrip(".")
    if domain in MAILBOX_PROVIDER_DOMAINS:
        return domain
    family, _, suffix = domain.partition(".")
    labels = suffix.split(".") if suffix else []
    is_public_suffix = len(labels) == 1 or (len(labels) == 2 and labels[0] in _SECOND_LEVEL)
    if family in MAILBOX_PROVIDER_FAMILIES and is_public_suffix and all(labels):
        return family
    return None
