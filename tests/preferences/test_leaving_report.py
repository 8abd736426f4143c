from django.urls import reverse

from preferences.models import ExitSurveyReason
from tests.support.factories import ExitSurveyResponseFactory


def test_the_report_has_a_helpful_empty_state(viewer_client):
    page = viewer_client.get(reverse("leaving:report"))
    assert page.status_code == 200
    assert b"No exit-survey answers yet" in page.content


def test_the_report_counts_reasons_and_shows_free_text(viewer_client, subscriber):
    ExitSurveyResponseFactory(
        subscriber=subscriber, reasons=["too_many", "other"], other_text="Daily is too much"
    )
    ExitSurveyResponseFactory(reasons=["too_many"])
    page = viewer_client.get(reverse("leaving:report"))
    chart = page.context["chart"]
    too_many = next(d for d in chart["datasets"] if d["label"] == "I get too many emails")
    assert sum(too_many["data"]) == 2
    assert b"Daily is too much" in page.content
    shares = {row["label"]: row["share"] for row in page.context["by_reason"]}
    assert shares["I get too many emails"] == 100.0
    assert shares["Other"] == 50.0


def test_an_admin_edits_the_reasons(admin_client):
    response = admin_client.post(
        reverse("leaving:reasons"),
        {
            "key": "price",
            "label_en": "Too expensive",
            "label_fr": "Trop cher",
            "position": 9,
            "active": "on",
        },
    )
    assert response.status_code == 302
    assert ExitSurveyReason.objects.filter(key="price", label_fr="Trop cher").exists()


def test_viewers_and_editors_cannot_edit_reasons(viewer_client, editor_user):
    assert viewer_client.get(reverse("leaving:reasons")).status_code == 403
    viewer_client.force_login(editor_user)
    response = viewer_client.post(
        reverse("leaving:reasons"), {"key": "x", "label_en": "X", "label_fr": "X", "position": 1}
    )
    assert response.status_code == 403
    assert not ExitSurveyReason.objects.filter(key="x").exists()
