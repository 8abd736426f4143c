"""Helpers the apps' GDPR erasure hooks share."""

import re

from django.db.models import F, Func, Value


def scrub(field: str, address: str, replacement: str = "erased address") -> Func:
    """SQL expression: ``field`` with every occurrence of ``address`` (any case) replaced, for
    free text (bounce reasons, error messages, import reasons) that may quote the address.
    Python's re.escape only escapes punctuation, which PostgreSQL's regex reads literally too."""
    return Func(
        F(field),
        Value(re.escape(address)),
        Value(replacement),
        Value("gi"),
        function="regexp_replace",
    )
