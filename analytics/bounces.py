"""Hard, soft or sender-caused: what a refusal says about the address, or about us.

ONE classifier for every path a refusal arrives by: the raw MTA reply an ESP webhook passes
on, the SMTP pipeline's synchronous refusal (``smtplib.SMTPRecipientsRefused`` gives the
code and the text), and (to come) DSN mail read from the bounce mailbox.

- **soft**: temporary (any 4xx, a full mailbox, a message too large): the address is kept;
  SOFT_BOUNCE_LIMIT of them within SOFT_BOUNCE_DAYS suppress it.
- **hard**: the address is dead (5.1.x unknown user or domain, a disabled mailbox): it is
  suppressed at once.
- **sender**: the receiver refused *us*, not the address: authentication or DMARC failures,
  policy, content and reputation blocks, block lists. Suppressing the subscriber would lose
  a good address for a fault of ours; instead it counts against the connection and the
  sending domain (``reputation.py``), which are what has to be fixed.

A 4xx is soft whatever its text, so a caller that retries temporary refusals can rely on
"soft" meaning "try again": a temporary sender-caused deferral (Yahoo's 421 4.7.0 [TS04])
is retried by the MTA, and only its final, permanent form counts against the sender.

Pure functions of the reply, so they can be re-run over stored Events when the rules change.
"""

import re

HARD = "hard"
SOFT = "soft"
SENDER = "sender"

# "550 5.1.1 ...", "550-5.7.26 ...", "smtp; 550 5.1.1", "bounced (550 5.1.1 ...)", "5.1.1 ...".
_CODE = re.compile(r"(?<![\d.])([245]\d\d)(?:[ \-]|$)")
_ENHANCED = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")

# Authentication of the sender: unambiguous whatever the status code says.
_AUTHENTICATION = re.compile(
    r"dmarc|\bspf\b|dkim|unauthenticated|not authenticated|authentication"
    r"|5\.7\.(?:23|24|25|26|27|509|510|515)\b"
)
# Blocks of the sender: its IP, its domain, its reputation, its content or its rate.
_SENDER = re.compile(
    r"block ?list|black ?list|blocked|spamhaus|barracuda|spamcop|sorbs|\brbl\b|dnsbl"
    r"|reputation|\bpolic(?:y|ies)\b|spam|unsolicited|\bjunk\b|bulk mail|phish|virus"
    r"|content rejected|rejected (?:due to|because of|for) (?:content|policy)|prohibited"
    r"|banned|not allowed to send|relay(?:ing)? (?:access )?(?:denied|not permitted)"
    r"|too many (?:messages|connections|recipients)|rate limit|\[ts\d\d\]|tss\d\d"
    r"|reverse dns|\bptr\b|helo"
)
# The address itself does not exist or takes no mail.
_ADDRESS = re.compile(
    r"user unknown|unknown user|no such (?:user|recipient|mailbox|address)|does ?n[o']t exist"
    r"|not exist|unknown (?:recipient|address|mailbox)|invalid (?:recipient|mailbox|address)"
    r"|recipient (?:not found|unknown|invalid)|mailbox (?:not found|unavailable|disabled"
    r"|inactive|is disabled|does not)|recipient address rejected|address rejected"
    r"|user not found|account (?:disabled|is disabled|has been disabled|inactive|does not)"
    r"|no mailbox|unrouteable|undeliverable address|bad destination|addressee unknown"
    r"|has no (?:yahoo|account)|doesn't have a \S+ account|not our customer|no longer"
)
# The mailbox is there but cannot take this message now.
_FULL = re.compile(
    r"mailbox (?:is )?full|over ?quota|quota exceeded|exceeded (?:its|the|storage)"
    r"|insufficient (?:system )?storage|out of storage|too large|size exceeds|message size"
)


def reply_parts(text: str) -> tuple[int | None, str]:
    """The basic SMTP code and the enhanced status code (RFC 3463) found in a reply's text,
    wherever the ESP put them ("smtp; 550 5.1.1 ...", "bounced (550 5.1.1 ...)")."""
    text = text or ""
    code = _CODE.search(text)
    enhanced = _ENHANCED.search(text)
    return (
        int(code.group(1)) if code else None,
        ".".join(enhanced.groups()) if enhanced else "",
    )


def bounce_kind(*, smtp_code: int | None, enhanced: str = "", text: str = "") -> str:
    """hard / soft / sender (``Event.BounceType``) of a refusal.

    ``smtp_code`` is the basic reply code (550), ``enhanced`` the RFC 3463 status ("5.1.1")
    and ``text`` the reply's text; a code or a status missing is looked for in the text.
    """
    text = str(text or "")
    found_code, found_enhanced = reply_parts(text)
    if smtp_code is None:
        smtp_code = found_code
    enhanced = (enhanced or found_enhanced or "").strip()
    lowered = text.lower()

    klass = str(smtp_code)[0] if smtp_code else enhanced[:1]
    if klass == "4":
        return SOFT
    if klass == "2":
        return SOFT  # not a refusal at all: nothing to hold against anyone

    if _AUTHENTICATION.search(lowered) or _AUTHENTICATION.search(enhanced):
        return SENDER
    subject, _, detail = enhanced[2:].partition(".")
    if subject == "1":
        # 5.1.7 / 5.1.8: the *sender's* address or domain was refused.
        return SENDER if detail in {"7", "8"} else HARD
    if subject == "2":
        return SOFT if detail in {"2", "3"} else HARD
    if subject == "3":
        return SOFT  # the receiving system is full, or the message too large for it
    if subject == "4":
        return HARD  # no route to the domain
    if subject == "6":
        return SENDER  # our message's content or encoding was refused
    if subject == "7":
        # Security or policy. Some servers say "user unknown" under 5.7.1 (a recipient
        # restriction): that is the address; the rest is about us.
        return HARD if _ADDRESS.search(lowered) else SENDER

    if _SENDER.search(lowered):
        return SENDER
    if _FULL.search(lowered):
        return SOFT
    return HARD
