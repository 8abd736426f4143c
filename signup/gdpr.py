"""Signups of one person: GDPR export, erasure and timeline hooks
(registered in SignupConfig.ready())."""

from django.db.models import F, Func, Value

from subscribers.models import Subscriber

from .models import Signup

TIMELINE_LIMIT = 200


def _iso(value):
    return value.isoformat() if value else None


def signups_export(subscriber: Subscriber) -> list[dict]:
    return [
        {
            "form": row["form__name"],
            "source_page": row["source_page"],
            "utm_source": row["utm_source"],
            "utm_medium": row["utm_medium"],
            "utm_campaign": row["utm_campaign"],
            "ip": row["ip"],
            "user_agent": row["user_agent"],
            "consent_text": row["consent_text"],
            "consent_version": row["consent_version"],
            "steps_completed": row["steps_completed"],
            "pending_answers": row["pending"],
            "created_at": _iso(row["created_at"]),
            "confirmation_sent_at": _iso(row["confirmation_sent_at"]),
            "reminder_sent_at": _iso(row["reminder_sent_at"]),
            "confirmed_at": _iso(row["confirmed_at"]),
            "downloaded_at": _iso(row["downloaded_at"]),
        }
        for row in Signup.objects.filter(subscriber=subscriber)
        .order_by("created_at", "id")
        .values(
            "form__name",
            "source_page",
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "ip",
            "user_agent",
            "consent_text",
            "consent_version",
            "steps_completed",
            "pending",
            "created_at",
            "confirmation_sent_at",
            "reminder_sent_at",
            "confirmed_at",
            "downloaded_at",
        )
    ]


def signups_erase(subscriber: Subscriber) -> None:
    """The rows stay (form conversion stats count them, by page and UTM) but lose the network
    facts, the page's query string and fragment (tokens, addresses pasted into links) and any
    answers still waiting for a confirmation that will never come."""
    Signup.objects.filter(subscriber=subscriber).update(
        ip=None,
        user_agent="",
        pending={},
        source_page=Func(F("source_page"), Value("[?#].*$"), Value(""), function="regexp_replace"),
    )


def signups_timeline(subscriber: Subscriber) -> list[dict]:
    rows = (
        Signup.objects.filter(subscriber=subscriber)
        .order_by("-created_at", "-id")
        .values("form__name", "source_page", "created_at", "confirmed_at")[:TIMELINE_LIMIT]
    )
    items = []
    for row in rows:
        where = f" on {row['source_page']}" if row["source_page"] else ""
        items.append(
            {
                "at": row["created_at"],
                "kind": "signup",
                "text": f"Signed up through form “{row['form__name']}”{where}",
            }
        )
        if row["confirmed_at"]:
            items.append(
                {
                    "at": row["confirmed_at"],
                    "kind": "signup_confirmed",
                    "text": f"Confirmed the signup through form “{row['form__name']}”",
                }
            )
    return items
