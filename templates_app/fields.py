"""The fields a merge tag may name, and the per-recipient context that fills them.

Newsletters may only use these fields; a canned reply may also use ad-hoc fields (any other
plain name, such as ``{{ topic }}``) that the sender fills in when replying.
"""

from collections.abc import Iterable, Mapping

SUBSCRIBER_FIELDS = ("first_name", "last_name", "email")
URL_FIELDS = ("unsubscribe_url", "preferences_url", "view_in_browser_url")
ATTRIBUTE_PREFIX = "attr."
# The sender's identity (settings.COMPANY_*): substituted once at compile time, anywhere.
COMPANY_FIELDS = ("company_name", "company_postal_address")
# Only a layout may use these: where the body, preheader and subject go.
LAYOUT_FIELDS = ("content", "preheader", "subject")


def known_fields() -> list[str]:
    """What the linter accepts in a newsletter (``attr.<key>`` stands for any custom key)."""
    return [*SUBSCRIBER_FIELDS, ATTRIBUTE_PREFIX + "<key>", *URL_FIELDS, *COMPANY_FIELDS]


def is_known_field(path: str) -> bool:
    if path in SUBSCRIBER_FIELDS or path in URL_FIELDS or path in COMPANY_FIELDS:
        return True
    return path.startswith(ATTRIBUTE_PREFIX) and path.count(".") == 1


def is_recipient_data(path: str) -> bool:
    """Fields that come from the subscriber row (and so may be empty for some recipients)."""
    return path in SUBSCRIBER_FIELDS or path.startswith(ATTRIBUTE_PREFIX)


def adhoc_fields(paths: Iterable[str]) -> list[str]:
    """The canned-reply fields the sender must fill: every plain name that is not known."""
    seen: list[str] = []
    for path in paths:
        if not is_known_field(path) and "." not in path and path not in seen:
            seen.append(path)
    return seen


def subscriber_context(
    subscriber=None,
    *,
    email: str = "",
    unsubscribe_url: str = "",
    preferences_url: str = "",
    view_in_browser_url: str = "",
    link_urls: list[str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict:
    """A plain dict for ``CompiledMessage.render``: never pass model instances to a render."""
    context = {
        "first_name": getattr(subscriber, "first_name", "") or "",
        "last_name": getattr(subscriber, "last_name", "") or "",
        "email": getattr(subscriber, "email", "") or email,
        "attr": dict(getattr(subscriber, "attributes", None) or {}),
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
        "view_in_browser_url": view_in_browser_url,
        "link_urls": link_urls or [],
    }
    if extra:
        for key, value in extra.items():
            if key not in context:
                context[key] = value
    return context


SAMPLE_CONTEXT = {
    "first_name": "Camille",
    "last_name": "Martin",
    "email": "camille.martin@example.com",
    "attr": {"company": "Example & Co", "city": "Lyon", "plan": "pro"},
    "unsubscribe_url": "https://example.com/unsubscribe/sample",
    "preferences_url": "https://example.com/preferences/sample",
    "view_in_browser_url": "https://example.com/view/sample",
    "link_urls": [],
}
