from django.db import connection
from django.utils import formats, timezone

from campaigns.models import Delivery
from subscribers.models import Subscriber

from .models import ExitSurveyReason, ExitSurveyResponse, PreferenceCenterSettings


def is_paused(subscriber: Subscriber) -> bool:
    return bool(subscriber.paused_until and subscriber.paused_until > timezone.now())


def paused_until_display(subscriber: Subscriber) -> str:
    return formats.date_format(timezone.localtime(subscriber.paused_until), "DATE_FORMAT")


def editable_fields() -> list:
    """Custom fields the marketer lets subscribers edit themselves."""
    return list(PreferenceCenterSettings.load().editable_fields.order_by("label", "id"))


def campaign_for_delivery(delivery_id: int | None) -> int | None:
    """The campaign whose link the recipient followed (None for links not from a campaign)."""
    if delivery_id is None:
        return None

    return Delivery.objects.filter(pk=delivery_id).values_list("campaign_id", flat=True).first()


_REASON_COUNTS_SQL = """
    SELECT {group}, COALESCE(r.key, '') AS reason, count(*)
    FROM preferences_exitsurveyresponse a
    LEFT JOIN LATERAL jsonb_array_elements_text(a.reasons) AS r(key) ON true
    {where}
    GROUP BY 1, 2
"""


def exit_reasons_by_month(tz: str) -> list[tuple[str, str, int]]:
    """(YYYY-MM in the given time zone, reason key or '' for none given, answers)."""
    sql = _REASON_COUNTS_SQL.format(
        group="to_char(date_trunc('month', a.created_at AT TIME ZONE %s), 'YYYY-MM')", where=""
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [tz])
        return cursor.fetchall()


def exit_reasons_by_campaign(campaign_ids: list[int]) -> list[tuple[int, str, int]]:
    """(campaign id, reason key or '', answers) for the given campaigns."""
    if not campaign_ids:
        return []
    sql = _REASON_COUNTS_SQL.format(group="a.campaign_id", where="WHERE a.campaign_id = ANY(%s)")
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign_ids])
        return cursor.fetchall()


def campaign_exit_survey(campaign_id: int, *, texts: int = 10) -> dict:
    """What the people who left through a campaign's links answered: the number of answers,
    each reason with its count (most given first) and the latest free-text answers."""
    labels = dict(ExitSurveyReason.objects.values_list("key", "label_en"))
    counts = [(key, n) for _, key, n in exit_reasons_by_campaign([campaign_id]) if key]
    answers = ExitSurveyResponse.objects.filter(campaign_id=campaign_id)
    return {
        "answers": answers.count(),
        "reasons": [
            {"label": labels.get(key, key), "count": n}
            for key, n in sorted(counts, key=lambda item: (-item[1], item[0]))
        ],
        "texts": list(
            answers.exclude(other_text="")
            .order_by("-created_at")
            .values_list("other_text", flat=True)[:texts]
        ),
    }
