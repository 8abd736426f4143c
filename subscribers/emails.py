"""Email address normalization: email-validator's rules, with a fast path for plain addresses.

email-validator is the authority (syntax only: check_deliverability=False). Parsing every address
of a million-row import through it would dominate the import, so addresses made only of the
plain characters it always accepts skip the full parse; their domain is still checked by
email-validator once per distinct domain (special-use names, numeric TLDs, label lengths).
"""

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email


class EmailError(ValueError):
    pass


# A strict subset of what email-validator accepts: dot-atoms of plain ASCII characters.
_PLAIN = re.compile(
    r"[a-z0-9_%+=-]+(?:\.[a-z0-9_%+=-]+)*@"
    r"((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?)"
)


@lru_cache(maxsize=50_000)
def _domain_ok(domain: str) -> bool:
    try:
        validate_email(f"x@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return False
    return True


def email_normalize(raw: str) -> str:
    """The stored form of an address (lowercase), or EmailError with a readable reason."""
    text = (raw or "").strip()
    if not text:
        raise EmailError("The email address is empty")
    lowered = text.lower()
    match = _PLAIN.fullmatch(lowered)
    if match and len(lowered) <= 254 and lowered.index("@") <= 64 and _domain_ok(match[1]):
        return lowered
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise EmailError(f"{text[:80]!r} is not a valid email address: {exc}") from None
    return result.normalized.lower()
