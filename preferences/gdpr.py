"""Exit-survey answers of one person: GDPR export and timeline hooks (registered in
PreferencesConfig.ready(); erasure is services.exit_survey_forget)."""

from collections.abc import Iterable, Mapping
from typing import Any

from subscribers.models import Subscriber

from .models import ExitSurveyReason, ExitSurveyResponse

TIMELINE_LIMIT = 200


def _labels(responses: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    keys = {key for r in responses for key in r["reasons"]}
    return dict(ExitSurveyReason.objects.filter(key__in=keys).values_list("key", "label_en"))


def exit_survey_export(subscriber: Subscriber) -> list[dict]:
    rows = list(
        ExitSurveyResponse.objects.filter(subscriber=subscriber)
        .order_by("created_at", "id")
        .values("reasons", "other_text", "language", "campaign__name", "created_at")
    )
    labels = _labels(rows)
    return [
        {
            "reasons": [labels.get(key, key) for key in row["reasons"]],
            "other_text": row["other_text"],
            "language": row["language"],
            "campaign": row["campaign__name"],
            "answered_at": row["created_at"].isoformat(),
        }
        for row in rows
    ]


def exit_survey_timeline(subscriber: Subscriber) -> list[dict]:
    rows = list(
        ExitSurveyResponse.objects.filter(subscriber=subscriber)
        .order_by("-created_at", "-id")
        .values("reasons", "other_text", "campaign__name", "created_at")[:TIMELINE_LIMIT]
    )
    labels = _labels(rows)
    items = []
    for row in rows:
        answers = [labels.get(key, key) for key in row["reasons"]]
        if row["other_text"]:
            answers.append(f"“{row['other_text'][:200]}”")
        text = "Answered the exit survey: " + ("; ".join(answers) or "no reason given")
        if row["campaign__name"]:
            text += f" (after “{row['campaign__name']}”)"
        items.append({"at": row["created_at"], "kind": "exit_survey", "text": text})
    return items
