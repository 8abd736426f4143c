"""What a bounce, complaint or ESP unsubscribe does to the audience, at once.

Hard bounce or complaint: the address is suppressed and the subscriber's status set (bounced /
complained). Soft bounces only count: SOFT_BOUNCE_LIMIT of them within SOFT_BOUNCE_DAYS
suppress too. A sender-caused rejection (authentication, policy, reputation: see
analytics.bounces) leaves the address alone: it counts against the sending domain instead.
An ESP-reported unsubscribe unsubscribes from everything, like the one-click link would.
"""

from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Count

from subscribers.models import Subscriber, Suppression, email_hash
from subscribers.services import subscriber_unsubscribe, suppression_add, suppressions_add

from .models import Event

if TYPE_CHECKING:
    from .ingest import Fact  # ingest calls feedback_apply

K = Event.Kind

# A hard bounce or a complaint suppresses the address: (reason, note when the ESP gave none,
# the suppression's event after the ESP's name). Keyed by str: a Fact's kind is a plain str.
SUPPRESSING: dict[str, tuple[Suppression.Reason, str, str]] = {
    K.BOUNCED: (Suppression.Reason.HARD_BOUNCE, "hard bounce", "bounce"),
    K.COMPLAINED: (Suppression.Reason.COMPLAINT, "spam complaint", "complaint"),
}


def _set_status(*, subscriber_ids: set[int], status: str) -> None:
    """Set the status, but never turn a complaint back into a bounce."""
    Subscriber.objects.filter(id__in=subscriber_ids).exclude(
        status=Subscriber.Status.COMPLAINED
    ).update(status=status)


def feedback_apply(*, facts: list["Fact"]) -> None:
    bounced_ids: set[int] = set()
    complained_ids: set[int] = set()
    suppress: list[tuple[str, str, str, str]] = []  # written in one statement, in fact order
    soft_candidates: dict[str, Fact] = {}
    for f in facts:
        address = (f.recipient or "").strip().lower()
        if not address:
            continue
        if f.kind == K.BOUNCED and f.bounce_type == Event.BounceType.SENDER:
            continue  # refused for our fault, not the address's: reputation.py deals with it
        if f.kind == K.BOUNCED and f.bounce_type == Event.BounceType.SOFT:
            soft_candidates[f.email_hash or email_hash(address)] = f
        elif f.kind in SUPPRESSING:
            reason, default, event = SUPPRESSING[f.kind]
            suppress.append((address, reason, f.reason or default, f"{f.esp} {event}"))
            if f.subscriber_id:
                (bounced_ids if f.kind == K.BOUNCED else complained_ids).add(f.subscriber_id)
        elif f.kind == K.UNSUBSCRIBED:
            subscriber = (
                Subscriber.objects.filter(pk=f.subscriber_id).first() if f.subscriber_id else None
            )
            if subscriber is not None:
                subscriber_unsubscribe(subscriber=subscriber, source=f"{f.esp} unsubscribe")
            else:
                suppression_add(
                    email=address,
                    reason=Suppression.Reason.UNSUBSCRIBED,
                    event=f"{f.esp} unsubscribe"[:100],
                )
    suppressions_add(suppress)
    if soft_candidates:
        since = max(f.occurred_at for f in soft_candidates.values()) - timedelta(
            days=settings.SOFT_BOUNCE_DAYS
        )
        counts = dict(
            Event.objects.filter(
                email_hash__in=soft_candidates,
                kind=K.BOUNCED,
                bounce_type=Event.BounceType.SOFT,
                occurred_at__gte=since,
            )
            .values("email_hash")
            .annotate(n=Count("id"))
            .values_list("email_hash", "n")
        )
        for hashed, f in soft_candidates.items():
            n = counts.get(hashed, 0)
            if n >= settings.SOFT_BOUNCE_LIMIT:
                suppression_add(
                    email=f.recipient,
                    reason=Suppression.Reason.HARD_BOUNCE,
                    note=f"{n} soft bounces within {settings.SOFT_BOUNCE_DAYS} days",
                    event=f"{f.esp} soft bounces"[:100],
                )
                if f.subscriber_id:
                    bounced_ids.add(f.subscriber_id)
    if complained_ids:
        _set_status(subscriber_ids=complained_ids, status=Subscriber.Status.COMPLAINED)
    if bounced_ids - complained_ids:
        _set_status(subscriber_ids=bounced_ids - complained_ids, status=Subscriber.Status.BOUNCED)
