"""DKIM keys and signing (RFC 6376, with Ed25519 from RFC 8463) for mail sent over SMTP.

ESPs sign for their customers; a sender's own relay or MTA does not, and since 2024 Gmail,
Yahoo and Outlook.com junk or refuse unsigned bulk mail. So every message the pipeline hands
to an SMTP server is signed here, by the sending domain's active keys.

- Keys are generated in the dashboard (RSA 2048, optionally Ed25519 beside it: the message is
  then dual-signed, and a receiver that does not know Ed25519 still checks the RSA signature).
  The private key is kept encrypted at rest (Fernet, keyed from SECRET_KEY, with
  SECRET_KEY_FALLBACKS still able to decrypt after a key change); the page shows the exact TXT
  record to publish.
- Rotation without a gap: a new key gets its own selector and waits, ``pending``, until its
  record is published; activating it moves the old key to ``retiring``, still published, so
  messages already in flight keep verifying; it is removed from DNS days later.
- Signing is OpenSSL's (``cryptography``, ~0.7 ms per RSA-2048 signature on this machine),
  not dkimpy's pure-Python RSA. The canonicalization is relaxed/relaxed, which survives a relay
  that re-folds headers or re-spaces lines. dkimpy verifies the result in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from django.conf import settings

# What the signature covers, when the message has it. RFC 8058 §4 requires List-Unsubscribe
# and List-Unsubscribe-Post to be signed for one-click unsubscribe to be honoured.
SIGNED_HEADERS = (
    "from",
    "reply-to",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
)
# Signed once more than present: nobody can add a second From or Subject below the signature
# and still have it verify (RFC 6376 §8.15).
OVERSIGNED = ("from", "subject", "list-unsubscribe", "list-unsubscribe-post")

RSA, ED25519 = "rsa", "ed25519"
_WSP_RUN = re.compile(rb"[ \t]+")
_WSP_BEFORE_CRLF = re.compile(rb"[ \t]+\r\n")
_FOLD = re.compile(rb"\r\n(?=[ \t])")


# --------------------------------------------------------------------------------------------
# Keys at rest


def _fernet() -> MultiFernet:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([Fernet(_derive(secret)) for secret in secrets])


@lru_cache(maxsize=8)
def _derive(secret: str) -> bytes:
    digest = hashlib.sha256(b"nofailmail.dkim-key-at-rest:" + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def encrypt_private_key(pem: bytes) -> str:
    return _fernet().encrypt(pem).decode()


def decrypt_private_key(token: str) -> bytes:
    try:
        return _fernet().decrypt(token.encode())
    except InvalidToken as exc:
        raise ValueError(
            "This DKIM key cannot be decrypted: SECRET_KEY changed and the old one is not in "
            "SECRET_KEY_FALLBACKS."
        ) from exc


@dataclass(frozen=True)
class GeneratedKey:
    algorithm: str
    private_pem: bytes
    public_b64: str  # the p= value


def generate_key(algorithm: str = RSA, *, bits: int = 2048) -> GeneratedKey:
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == RSA:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    elif algorithm == ED25519:
        key = ed25519.Ed25519PrivateKey.generate()
        # RFC 8463: p= is the raw 32-byte public key, not a SubjectPublicKeyInfo.
        public = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
    else:
        raise ValueError(f"Unknown DKIM algorithm {algorithm!r}")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return GeneratedKey(algorithm, pem, base64.b64encode(public).decode())


def txt_record(algorithm: str, public_b64: str) -> str:
    """The TXT record's value, exactly as it must be published."""
    return f"v=DKIM1; k={algorithm}; p={public_b64}"


def txt_record_chunks(value: str, size: int = 255) -> list[str]:
    """A TXT string is at most 255 bytes: a 2048-bit key's record is published as several
    quoted strings in one record (most DNS panels split it themselves)."""
    return [value[i : i + size] for i in range(0, len(value), size)]


def public_key_bits(algorithm: str, public_b64: str) -> int | None:
    """The size of a published key, for the DNS check (None when it cannot be read)."""
    try:
        raw = base64.b64decode(public_b64, validate=False)
        if algorithm == ED25519:
            return 256 if len(raw) == 32 else None
        key = serialization.load_der_public_key(raw)
    except (ValueError, TypeError):
        return None
    return key.key_size if isinstance(key, rsa.RSAPublicKey) else None


# --------------------------------------------------------------------------------------------
# Signing


def canonical_body(body: bytes) -> bytes:
    """Relaxed body canonicalization (RFC 6376 §3.4.4)."""
    body = _WSP_BEFORE_CRLF.sub(b"\r\n", _WSP_RUN.sub(b" ", body))
    body = body.rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


def canonical_header(name: bytes, value: bytes) -> bytes:
    """Relaxed header canonicalization (RFC 6376 §3.4.2): lower-case name, value unfolded,
    runs of whitespace made one space, no whitespace at either end."""
    value = _WSP_RUN.sub(b" ", _FOLD.sub(b"", value)).strip(b" \t\r\n")
    return name.strip().lower() + b":" + value + b"\r\n"


def split_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """(name, raw value) pairs in order; a folded header keeps its continuation lines."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        elif line:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields


@dataclass(frozen=True)
class Signer:
    """One key of one domain, loaded once per campaign."""

    domain: str
    selector: str
    algorithm: str
    private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

    @classmethod
    def from_pem(cls, *, domain: str, selector: str, algorithm: str, pem: bytes) -> Signer:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
            raise ValueError("Only RSA and Ed25519 DKIM keys are supported")
        return cls(domain, selector, algorithm, key)

    def header(self, fields: Sequence[tuple[bytes, bytes]], body_hash: str) -> bytes:
        """The complete ``DKIM-Signature: ...\\r\\n`` line for a message with these header
        fields and this body hash."""
        present: dict[bytes, list[bytes]] = {}
        for name, value in fields:
            present.setdefault(name.strip().lower(), []).append(value)
        names: list[str] = []
        signed = []
        for header_name in SIGNED_HEADERS:
            values = present.get(header_name.encode())
            if not values:
                continue
            # Several instances are signed from the bottom up (RFC 6376 §5.4.2).
            for value in reversed(values):
                names.append(header_name)
                signed.append(canonical_header(header_name.encode(), value))
        names.extend(n for n in OVERSIGNED if n.encode() in present)
        algorithm = "rsa-sha256" if self.algorithm == RSA else "ed25519-sha256"
        value = (
            f" v=1; a={algorithm}; c=relaxed/relaxed; d={self.domain}; s={self.selector};\r\n"
            f"\tt={int(time.time())}; h={':'.join(names)};\r\n"
            f"\tbh={body_hash};\r\n\tb="
        ).encode()
        data = b"".join(signed) + canonical_header(b"dkim-signature", value)[:-2]
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            signature = self.private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        else:  # RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data
            signature = self.private_key.sign(hashlib.sha256(data).digest())
        b = base64.b64encode(signature)
        folded = b"\r\n\t".join(b[i : i + 72] for i in range(0, len(b), 72))
        return b"DKIM-Signature:" + value + folded + b"\r\n"


def sign(message: bytes, signers: Iterable[Signer]) -> bytes:
    """``message`` (CRLF line ends) with one DKIM-Signature header per signer on top."""
    signers = list(signers)
    if not signers:
        return message
    head, sep, body = message.partition(b"\r\n\r\n")
    if not sep:
        head, body = message, b""
    fields = split_headers(head)
    body_hash = base64.b64encode(hashlib.sha256(canonical_body(body)).digest()).decode()
    return b"".join(signer.header(fields, body_hash) for signer in signers) + message
