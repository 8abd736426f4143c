import json

from django.test import Client
from django.urls import reverse

from core.recipient_links import PREFERENCES, recipient_token
from subscribers.models import Subscriber, Subscription, Suppression, email_hash


def _active_topics(subscriber) -> set[str]:
    return set(
        Subscription.objects.filter(subscriber=subscriber, status="active").values_list(
            "topic__slug", flat=True
        )
    )


def test_the_page_shows_topics_and_changes_nothing(client, subscriber, pref_token):
    before = Subscriber.objects.values().get(pk=subscriber.pk)
    response = client.get(reverse("preferences:center", args=[pref_token]))
    assert response.status_code == 200
    assert b"Weekly letter" in response.content
    assert b"ada@example.com" in response.content
    assert Subscriber.objects.values().get(pk=subscriber.pk) == before
    assert response["X-Robots-Tag"] == "noindex"
    assert response["Referrer-Policy"] == "same-origin"  # the token never leaves the site


def test_a_tampered_token_shows_an_error_and_changes_nothing(client, subscriber, pref_token):
    bad = pref_token[:-3] + ("AAA" if not pref_token.endswith("AAA") else "BBB")
    response = client.get(reverse("preferences:center", args=[bad]))
    assert response.status_code == 400
    assert b"This link does not work" in response.content
    response = client.post(reverse("preferences:topics", args=[bad]), {"topics": []})
    assert response.status_code == 400
    assert _active_topics(subscriber) == {"weekly", "events"}


def test_a_token_for_another_purpose_is_refused(client, subscriber, unsub_token):
    response = client.get(reverse("preferences:center", args=[unsub_token]))
    assert response.status_code == 400


def test_links_survive_a_secret_key_rotation(client, subscriber, settings):
    old_key = settings.SECRET_KEY
    token = recipient_token(PREFERENCES, subscriber_id=subscriber.pk)
    settings.SECRET_KEY = "a-brand-new-key-after-rotation-0123456789-abcdefghijklmnop"
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert client.get(reverse("preferences:center", args=[token])).status_code == 200
    settings.SECRET_KEY_FALLBACKS = []
    assert client.get(reverse("preferences:center", args=[token])).status_code == 400


def test_switching_a_topic_off_is_a_post(client, subscriber, pref_token, topics):
    url = reverse("preferences:topics", args=[pref_token])
    assert client.get(url).status_code == 405
    response = client.post(url, {"topics": [topics[0].pk]})
    assert response.status_code == 302
    assert _active_topics(subscriber) == {"weekly"}
    client.post(url, {"topics": [topics[0].pk, topics[1].pk]})
    assert _active_topics(subscriber) == {"weekly", "events"}


def test_the_forms_need_a_csrf_token(subscriber, pref_token):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(reverse("preferences:topics", args=[pref_token]), {"topics": []})
    assert response.status_code == 403
    assert _active_topics(subscriber) == {"weekly", "events"}


def test_pause_and_resume(client, subscriber, pref_token):
    url = reverse("preferences:pause", args=[pref_token])
    client.post(url, {"months": "3"})
    subscriber.refresh_from_db()
    assert subscriber.paused_until is not None
    days = (subscriber.paused_until - subscriber.updated_at).days
    assert 89 <= days <= 90
    page = client.get(reverse("preferences:center", args=[pref_token]))
    assert b"Email is paused until" in page.content
    client.post(url, {"resume": "1"})
    subscriber.refresh_from_db()
    assert subscriber.paused_until is None


def test_a_pause_of_an_unoffered_length_is_refused(client, subscriber, pref_token):
    client.post(reverse("preferences:pause", args=[pref_token]), {"months": "120"})
    subscriber.refresh_from_db()
    assert subscriber.paused_until is None


def test_send_me_less_sets_a_monthly_cap(client, subscriber, pref_token):
    url = reverse("preferences:frequency", args=[pref_token])
    client.post(url, {"per_month": "2"})
    subscriber.refresh_from_db()
    assert subscriber.max_campaigns_per_month == 2
    client.post(url, {"per_month": ""})
    subscriber.refresh_from_db()
    assert subscriber.max_campaigns_per_month is None


def test_editing_the_name_and_language(client, subscriber, pref_token):
    response = client.post(
        reverse("preferences:profile", args=[pref_token]),
        {"first_name": "Augusta", "last_name": "King", "language": "fr"},
    )
    assert response.status_code == 302
    subscriber.refresh_from_db()
    assert (subscriber.first_name, subscriber.last_name, subscriber.language) == (
        "Augusta",
        "King",
        "fr",
    )
    page = client.get(reverse("preferences:center", args=[pref_token]))
    assert "Vos préférences".encode() in page.content
    assert b"Au plus 2 par mois" in page.content  # choices too, not only headings


def test_download_my_data_is_a_json_attachment(client, subscriber, pref_token):
    url = reverse("preferences:export", args=[pref_token])
    assert client.get(url).status_code == 405
    response = client.post(url)
    assert response["Content-Disposition"] == 'attachment; filename="my-data.json"'
    data = json.loads(response.content)
    assert "ada@example.com" in json.dumps(data)


def test_erasure_asks_first_then_leaves_only_a_suppression_hash(client, subscriber, pref_token):
    url = reverse("preferences:erase", args=[pref_token])
    page = client.get(url)
    assert b"This cannot be undone" in page.content
    assert Subscriber.objects.get(pk=subscriber.pk).email == "ada@example.com"
    response = client.post(url)
    assert b"Your data is deleted" in response.content
    assert not Subscriber.objects.filter(email="ada@example.com").exists()
    assert Suppression.objects.filter(email_hash=email_hash("ada@example.com")).exists()
    # The link now names nobody.
    assert client.get(reverse("preferences:center", args=[pref_token])).status_code == 400
