"""What the sending ledger holds about one person: GDPR export, erasure and timeline hooks
(registered in CampaignsConfig.ready())."""

from django.db.models import Q

from core.erasure import scrub
from subscribers.models import Subscriber, email_hash

from .models import Delivery, SandboxMessage

TIMELINE_LIMIT = 200


def _iso(value):
    return value.isoformat() if value else None


def _deliveries_of(subscriber: Subscriber, address: str):
    """Their messages: a campaign's name the subscriber; a transactional message is sent to an
    address and names no subscriber (one person gets many; the ledger allows one delivery per
    campaign and subscriber), nor does a deleted subscriber's: those by the address hash
    (both through an index)."""
    return Delivery.objects.filter(
        Q(subscriber=subscriber) | Q(subscriber__isnull=True, email_hash=email_hash(address))
    )


def deliveries_export(subscriber: Subscriber) -> list[dict]:
    """Every campaign message addressed to them, oldest first (one query)."""
    return [
        {
            "campaign": row["campaign__name"],
            "status": row["status"],
            "sent_at": _iso(row["sent_at"]),
            "message_id": row["message_id"],
        }
        for row in _deliveries_of(subscriber, subscriber.email)
        .order_by("id")
        .values("campaign__name", "status", "sent_at", "message_id")
    ]


def deliveries_erase(subscriber: Subscriber) -> None:
    """The rows stay (campaign counts, per-domain reputation) but lose the address.

    email_hash stays: the claim-time suppression check matches on it, and it is the same hash the
    erasure suppression keeps. The address becomes the subscriber's erased placeholder rather
    than empty, so anything that formats a recipient still has a well-formed value.
    """
    address = subscriber.erasing_address
    # A transactional message's data is the caller's merge values (an order, a name): gone too.
    _deliveries_of(subscriber, address).update(
        email=subscriber.email, error=scrub("error", address), data=None
    )
    # Captured test-mode messages are whole rendered emails: nothing in them is aggregate.
    SandboxMessage.objects.filter(
        Q(delivery__subscriber=subscriber) | Q(to__iexact=address) | Q(to__iendswith=f"<{address}>")
    ).delete()


_OUTCOME: dict[str, str] = {
    Delivery.Status.SENT: "Sent",
    Delivery.Status.FAILED: "Could not send",
    Delivery.Status.SKIPPED: "Not sent",
    Delivery.Status.PENDING: "Queued",
    Delivery.Status.CLAIMED: "Sending",
    Delivery.Status.SENDING: "Sending",
    Delivery.Status.UNKNOWN: "Outcome unknown",
}


def deliveries_timeline(subscriber: Subscriber) -> list[dict]:
    """The latest campaigns addressed to them and what the sender did with each."""
    rows = (
        _deliveries_of(subscriber, subscriber.email)
        .order_by("-id")
        .values("campaign__name", "status", "sent_at", "created_at", "error")[:TIMELINE_LIMIT]
    )
    items = []
    for row in rows:
        text = f"{_OUTCOME.get(row['status'], row['status'])}: campaign “{row['campaign__name']}”"
        if row["status"] in (Delivery.Status.FAILED, Delivery.Status.SKIPPED) and row["error"]:
            text += f" ({row['error'][:200]})"
        items.append(
            {
                "at": row["sent_at"] or row["created_at"],
                "kind": f"delivery_{row['status']}",
                "text": text,
            }
        )
    return items
