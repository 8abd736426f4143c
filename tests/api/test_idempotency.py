from api.models import IdempotencyRecord
from subscribers.models import Subscriber
from tests.support.api import error_of


def test_a_replayed_idempotency_key_does_not_create_twice(api):
    body = {"email": "ann@example.com", "first_name": "Ann"}
    first = api.post("/subscribers", body, HTTP_IDEMPOTENCY_KEY="order-1")
    second = api.post("/subscribers", body, HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == second.status_code == 201
    assert first.content == second.content
    assert second["Idempotent-Replayed"] == "true" and not first.has_header("Idempotent-Replayed")
    assert Subscriber.objects.count() == 1
    # Without the header, the same body is a new request: the address exists now.
    assert api.post("/subscribers", body).status_code == 409


def test_the_same_key_with_another_body_is_refused(api):
    assert (
        api.post("/subscribers", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY="k").status_code
        == 201
    )
    response = api.post("/subscribers", {"email": "b@example.com"}, HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 422
    assert error_of(response) == {
        "code": "idempotency_key_reused",
        "message": error_of(response)["message"],
        "field": "Idempotency-Key",
    }
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["a@example.com"]


def test_an_error_answer_is_replayed_too(api):
    body = {"email": "not an address"}
    first = api.post("/subscribers", body, HTTP_IDEMPOTENCY_KEY="bad")
    second = api.post("/subscribers", body, HTTP_IDEMPOTENCY_KEY="bad")
    assert first.status_code == second.status_code == 422
    assert first.content == second.content and second["Idempotent-Replayed"] == "true"


def test_idempotency_keys_belong_to_one_api_key(make_api):
    one, two = make_api("write"), make_api("write")
    assert (
        one.post("/subscribers", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY="k").status_code
        == 201
    )
    # Another API key's "k" is its own: not a replay of the first key's answer.
    other = two.post("/subscribers", {"email": "b@example.com"}, HTTP_IDEMPOTENCY_KEY="k")
    assert other.status_code == 201 and not other.has_header("Idempotent-Replayed")
    assert IdempotencyRecord.objects.count() == 2


def test_a_request_still_running_is_not_run_twice(api):
    """The first request's record exists, unanswered (it is still running): a concurrent twin
    is told to retry rather than run it again."""
    assert (
        api.post("/subscribers", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY="k").status_code
        == 201
    )
    IdempotencyRecord.objects.update(status=0, response_body=b"")
    twin = api.post("/subscribers", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY="k")
    assert twin.status_code == 409 and error_of(twin)["code"] == "idempotency_in_progress"


def test_a_malformed_idempotency_key_is_refused(api):
    response = api.post("/subscribers", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY="x" * 300)
    assert response.status_code == 400 and error_of(response)["field"] == "Idempotency-Key"
    assert not Subscriber.objects.exists()


def test_answers_are_forgotten_after_a_day(api, settings):
    from django.utils import timezone

    from api.tasks import idempotency_records_purge

    api.post("/subscribers", {"email": "a@example.com"}, HTTP_IDEMPOTENCY_KEY="old")
    api.post("/subscribers", {"email": "b@example.com"}, HTTP_IDEMPOTENCY_KEY="new")
    IdempotencyRecord.objects.filter(idempotency_key="old").update(
        created_at=timezone.now() - timezone.timedelta(hours=25)
    )
    assert idempotency_records_purge() == 1
    assert list(IdempotencyRecord.objects.values_list("idempotency_key", flat=True)) == ["new"]
    assert settings.CELERY_BEAT_SCHEDULE["api-idempotency-purge"]["task"] == (
        "api.tasks.idempotency_records_purge"
    )
