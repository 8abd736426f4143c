"""A sending domain's DKIM keys: create, activate (rotation), retire, and the signers the
pipeline uses. The cryptography is in analytics.dkim."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from . import dkim
from .models import DkimKey, SendingDomain


class DkimKeyError(Exception):
    """A key operation that cannot be done, with a message for the person who asked."""


def _next_selector(domain: SendingDomain, algorithm: str) -> str:
    # nfm<yyyymm>[e]<n>: dated, so a glance at DNS tells how old a key is.
    stem = f"nfm{timezone.now():%Y%m}{'e' if algorithm == dkim.ED25519 else ''}"
    taken = set(domain.dkim_keys.values_list("selector", flat=True))
    n = 1
    while f"{stem}{n}" in taken:
        n += 1
    return f"{stem}{n}"


@transaction.atomic
def dkim_key_create(*, domain: SendingDomain, algorithm: str = dkim.RSA) -> DkimKey:
    """A new key for ``domain``. The domain's first key of an algorithm signs at once (a
    signature whose key is not yet published counts as no signature, RFC 6376 §6.1, so it
    costs nothing); a later one waits as ``pending`` until it is activated."""
    if algorithm not in DkimKey.Algorithm.values:
        raise DkimKeyError(f"Unknown algorithm {algorithm!r}.")
    SendingDomain.objects.select_for_update().get(pk=domain.pk)
    generated = dkim.generate_key(algorithm)
    has_active = domain.dkim_keys.filter(algorithm=algorithm, state=DkimKey.State.ACTIVE).exists()
    key = DkimKey.objects.create(
        domain=domain,
        selector=_next_selector(domain, algorithm),
        algorithm=algorithm,
        private_key=dkim.encrypt_private_key(generated.private_pem),
        public_key=generated.public_b64,
        state=DkimKey.State.PENDING if has_active else DkimKey.State.ACTIVE,
        activated_at=None if has_active else timezone.now(),
    )
    if not has_active and algorithm == dkim.RSA:
        _point_check_at(domain, key)
    return key


@transaction.atomic
def dkim_key_activate(*, key: DkimKey) -> DkimKey:
    """Rotation: ``key`` signs from now on; the key it replaces stays published (retiring)."""
    key = DkimKey.objects.select_for_update().get(pk=key.pk)
    if key.state == DkimKey.State.ACTIVE:
        return key
    if key.state == DkimKey.State.REVOKED:
        raise DkimKeyError("A removed key cannot sign again: create a new one.")
    now = timezone.now()
    DkimKey.objects.filter(
        domain_id=key.domain_id, algorithm=key.algorithm, state=DkimKey.State.ACTIVE
    ).update(state=DkimKey.State.RETIRING, retired_at=now)
    key.state, key.activated_at, key.retired_at = DkimKey.State.ACTIVE, now, None
    key.save(update_fields=["state", "activated_at", "retired_at"])
    if key.algorithm == dkim.RSA:
        _point_check_at(key.domain, key)
    return key


def dkim_key_revoke(*, key: DkimKey) -> DkimKey:
    """The record may be removed from DNS: the key never signs again."""
    if key.state == DkimKey.State.ACTIVE:
        raise DkimKeyError("Activate another key first: this one is signing.")
    key.state = DkimKey.State.REVOKED
    key.retired_at = key.retired_at or timezone.now()
    key.save(update_fields=["state", "retired_at"])
    return key


def _point_check_at(domain: SendingDomain, key: DkimKey) -> None:
    # The DNS check looks at the selector that signs.
    SendingDomain.objects.filter(pk=domain.pk).update(dkim_selector=key.selector)
    domain.dkim_selector = key.selector


def sending_domain_for(address_or_domain: str) -> SendingDomain | None:
    """The SendingDomain that signs for an address: its own domain, else the nearest parent
    (d= may be the organisational domain under relaxed DMARC alignment)."""
    name = address_or_domain.rpartition("@")[2].strip().strip(">").lower().rstrip(".")
    if not name:
        return None
    labels = name.split(".")
    candidates = [".".join(labels[i:]) for i in range(len(labels) - 1)]
    found = {d.domain.lower(): d for d in SendingDomain.objects.filter(domain__in=candidates)}
    return next((found[c] for c in candidates if c in found), None)


def signers_for(address: str) -> list[dkim.Signer]:
    """The active signers (RSA first, then Ed25519) for mail from ``address``; read and
    decrypted once per campaign."""
    domain = sending_domain_for(address)
    if domain is None:
        return []
    keys = sorted(
        domain.dkim_keys.filter(state=DkimKey.State.ACTIVE),
        key=lambda k: k.algorithm != dkim.RSA,
    )
    return [
        dkim.Signer.from_pem(
            domain=domain.domain,
            selector=k.selector,
            algorithm=k.algorithm,
            pem=dkim.decrypt_private_key(k.private_key),
        )
        for k in keys
    ]
