"""Signed tokens for recipient links (django.core.signing, one salt per purpose).

Signing uses SECRET_KEY and accepts SECRET_KEY_FALLBACKS, so links in emails already sent keep
working after a key rotation.
"""

from django.core import signing


class BadToken(Exception):
    """The token was tampered with, expired, or made for another purpose."""


def make_token(purpose: str, payload) -> str:
    return signing.dumps(payload, salt=f"nofailmail.{purpose}", compress=True)


def read_token(purpose: str, token: str, *, max_age: int | None = None):
    try:
        return signing.loads(token, salt=f"nofailmail.{purpose}", max_age=max_age)
    except signing.BadSignature as exc:  # SignatureExpired is a subclass
        raise BadToken(str(exc)) from exc
