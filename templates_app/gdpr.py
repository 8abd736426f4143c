"""Canned replies sent to one person: GDPR export, erasure and timeline hooks
(registered in TemplatesAppConfig.ready())."""

from django.db.models import OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce

from subscribers.models import Subscriber

from .models import SentReply, TemplateVersion

TIMELINE_LIMIT = 200


def sent_replies_export(subscriber: Subscriber) -> list[dict]:
    return [
        {"subject": row["subject"], "sent_at": row["sent_at"].isoformat(), "to": row["to_email"]}
        for row in SentReply.objects.filter(subscriber=subscriber)
        .order_by("sent_at", "id")
        .values("subject", "sent_at", "to_email")
    ]


def sent_replies_erase(subscriber: Subscriber) -> None:
    """The rows stay (who sent what template when) but lose the address, the rendered body and
    the merge values; the subject falls back to the template's unmerged one, since a merged
    subject may carry the name. A reply whose subscriber was unlinked is found by address."""
    address = subscriber.erasing_address
    unmerged = Subquery(TemplateVersion.objects.filter(pk=OuterRef("version_id")).values("subject"))
    SentReply.objects.filter(Q(subscriber=subscriber) | Q(to_email__iexact=address)).update(
        to_email=subscriber.email,
        text="",
        html="",
        fields={},
        subject=Coalesce(unmerged, Value("")),
    )


def sent_replies_timeline(subscriber: Subscriber) -> list[dict]:
    # No sender name: the timeline is also part of the export the recipient downloads.
    rows = (
        SentReply.objects.filter(subscriber=subscriber)
        .order_by("-sent_at", "-id")
        .values("subject", "sent_at")[:TIMELINE_LIMIT]
    )
    return [
        {
            "at": row["sent_at"],
            "kind": "canned_reply",
            "text": f"Canned reply sent: “{row['subject']}”",
        }
        for row in rows
    ]
