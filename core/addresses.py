"""The client's IP address, as the app stores it (``GenericIPAddressField`` columns are
PostgreSQL ``inet``: a value that is not an address makes the whole write fail)."""

import ipaddress


def address_or_none(value: str | None) -> str | None:
    """``value`` normalized if it is an IP address, else None: junk in a trusted
    X-Forwarded-For must not break the write that records it."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None
