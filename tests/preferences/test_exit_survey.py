import html

from django.urls import reverse

from preferences.models import ExitSurveyResponse
from subscribers.models import ConsentRecord, Subscriber, Suppression, email_hash
from tests.support.factories import SuppressionFactory


def _leave_from_the_page(client, token):
    return client.post(reverse("preferences:unsubscribe", args=[token]))


def test_the_unsubscribe_button_leads_to_the_survey(client, subscriber, unsub_token):
    response = _leave_from_the_page(client, unsub_token)
    assert response.status_code == 302
    assert response["Location"] == reverse("preferences:survey", args=[unsub_token])
    page = client.get(response["Location"])
    # Alternatives come before the reasons.
    content = page.content.decode()
    assert content.index("at most one email a month") < content.index("Why are you leaving?")
    assert "I get too many emails" in content


def test_after_a_one_click_unsubscribe_the_link_still_leads_to_the_survey(
    client, subscriber, unsub_token
):
    """The mail app's button (RFC 8058) shows the recipient no page: when they open the
    message's unsubscribe link later, the survey is one click away, and the answer counts."""
    url = reverse("preferences:unsubscribe", args=[unsub_token])
    client.post(url, {"List-Unsubscribe": "One-Click"})
    content = client.get(url).content.decode()
    survey = reverse("preferences:survey", args=[unsub_token])
    assert "is already unsubscribed" in content
    assert f'href="{survey}"' in content
    assert "Tell us why you left" in content
    client.post(survey, {"reasons": ["too_many"], "other_text": ""})
    assert ExitSurveyResponse.objects.get().reasons == ["too_many"]
    Subscriber.objects.filter(pk=subscriber.pk).update(language="fr")
    assert "Dites-nous pourquoi vous partez" in client.get(url).content.decode()


def test_answers_are_stored_once_per_link(client, subscriber, unsub_token):
    _leave_from_the_page(client, unsub_token)
    url = reverse("preferences:survey", args=[unsub_token])
    client.post(url, {"reasons": ["too_many", "other", "made_up"], "other_text": " Too long "})
    client.post(url, {"reasons": ["not_relevant"], "other_text": ""})
    answer = ExitSurveyResponse.objects.get()
    assert answer.reasons == ["not_relevant"]
    assert answer.subscriber == subscriber


def test_unknown_reasons_are_dropped_and_text_trimmed(client, subscriber, unsub_token):
    url = reverse("preferences:survey", args=[unsub_token])
    response = client.post(
        url, {"reasons": ["too_many", "made_up", "other"], "other_text": "  Too long  "}
    )
    assert response.status_code == 302
    answer = ExitSurveyResponse.objects.get()
    assert answer.reasons == ["too_many", "other"]
    assert answer.other_text == "Too long"


def test_a_reason_withdrawn_while_the_page_was_open_keeps_the_others(
    client, subscriber, unsub_token
):
    from preferences.models import ExitSurveyReason

    url = reverse("preferences:survey", args=[unsub_token])
    client.get(url)
    ExitSurveyReason.objects.filter(key="not_relevant").update(active=False)
    response = client.post(url, {"reasons": ["not_relevant", "too_many", "too_many"]})
    assert response.status_code == 302
    assert ExitSurveyResponse.objects.get().reasons == ["too_many"]


def test_skipping_the_survey_stores_nothing(client, subscriber, unsub_token):
    _leave_from_the_page(client, unsub_token)
    page = client.get(reverse("preferences:done", args=[unsub_token]))
    assert b"Subscribe again" in page.content
    assert not ExitSurveyResponse.objects.exists()


def test_send_me_less_instead_keeps_them_with_a_cap_and_new_consent(
    client, subscriber, unsub_token
):
    _leave_from_the_page(client, unsub_token)
    response = client.post(
        reverse("preferences:stay", args=[unsub_token]), {"choice": "less", "per_month": "1"}
    )
    assert response.status_code == 302
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.max_campaigns_per_month == 1
    assert not Suppression.objects.filter(email_hash=email_hash(subscriber.email)).exists()
    assert ConsentRecord.objects.filter(subscriber=subscriber).exists()


def test_resubscribing_records_consent_and_lifts_only_an_unsubscribe(
    client, subscriber, unsub_token
):
    _leave_from_the_page(client, unsub_token)
    client.post(reverse("preferences:come_back", args=[unsub_token]))
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    consent = ConsentRecord.objects.get(subscriber=subscriber)
    assert "again" in consent.text
    assert consent.ip == "127.0.0.1"


def test_a_complaint_is_not_lifted_by_a_link(client, subscriber, unsub_token):
    SuppressionFactory(
        email=subscriber.email,
        reason=Suppression.Reason.COMPLAINT,
    )
    client.post(reverse("preferences:come_back", args=[unsub_token]))
    assert Suppression.objects.filter(reason=Suppression.Reason.COMPLAINT).exists()


def test_french_subscribers_get_french_pages(client, subscriber, unsub_token):
    subscriber.language = "fr"
    subscriber.save()
    page = client.get(reverse("preferences:survey", args=[unsub_token]))
    content = page.content.decode()
    assert "Vous êtes désinscrit" in content
    assert html.escape("Je reçois trop d'e-mails") in content
    assert page["Content-Language"] == "fr"
