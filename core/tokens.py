"""Signed tokens for recipient links (django.core.signing, one salt per purpose).

Signing uses SECRET_KEY and accepts SECRET_KEY_FALLBACKS, so links in emails already sent keep
working after a key rotation.
"""

import hashlib
import hmac
from functools import lru_cache

from django.conf import settings
from django.core import signing


class BadToken(Exception):
    """The token was tampered with, expired, or made for another purpose."""


class _KeyedSigner(signing.TimestampSigner):
    """signing.dumps' signer with its HMAC key derived once, not per token: a campaign signs
    two tokens per message, and deriving the key (and building the signer) was most of their
    cost. Same algorithm, same tokens: signing.loads reads them."""

    def __init__(self, *, salt: str, secret: str):
        super().__init__(key=secret, salt=salt, algorithm="sha256")
        # django.utils.crypto.salted_hmac's key for (salt + "signer", SECRET_KEY).
        self._hmac_key = hashlib.sha256(f"{salt}signer{secret}".encode()).digest()

    def signature(self, value, key=None):
        if key is not None and key != self.key:
            return super().signature(value, key)
        digest = hmac.new(self._hmac_key, value.encode(), hashlib.sha256).digest()
        return signing.b64_encode(digest).decode()


@lru_cache(maxsize=32)
def _signer(purpose: str, secret: str) -> _KeyedSigner:
    return _KeyedSigner(salt=f"nofailmail.{purpose}", secret=secret)


def make_token(purpose: str, payload) -> str:
    # Keyed by the secret too: a rotation (or a test's override) takes effect at once.
    return _signer(purpose, settings.SECRET_KEY).sign_object(payload, compress=True)


def read_token(purpose: str, token: str, *, max_age: int | None = None):
    try:
        return signing.loads(token, salt=f"nofailmail.{purpose}", max_age=max_age)
    except signing.BadSignature as exc:  # SignatureExpired is a subclass
        raise BadToken(str(exc)) from exc
