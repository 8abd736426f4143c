from subscribers.models import Subscriber
from tests.support.api import error_of


def test_malformed_json_is_400_in_the_shape(api):
    response = api.client.post("/api/v1/subscribers", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] in ("bad_json", "bad_request")


def test_a_validation_error_names_the_field(api):
    response = api.post("/subscribers", {"email": 12})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid" and error["field"] == "email"
    nested = api.post("/subscribers", {"email": "a@example.com", "consent": {"version": "1"}})
    assert error_of(nested)["field"] == "consent.text"


def test_unknown_paths_methods_and_ids_answer_in_the_shape(api):
    for response, status in (
        (api.get("/nothing-here"), 404),
        (api.get("/subscribers/987654"), 404),
        (api.client.put("/api/v1/subscribers"), 405),
        (api.get("/subscribers/not-a-number"), 404),
    ):
        assert response.status_code == status
        error_of(response)


def test_nul_characters_are_refused_not_a_500(api):
    response = api.post("/subscribers", {"email": "a@example.com", "first_name": "A\u0000"})
    assert response.status_code == 422 and error_of(response)["field"] == "first_name"
    response = api.post("/subscribers/bulk", {"subscribers": [{"email": "a\u0000@example.com"}]})
    assert response.status_code in (200, 422)
    assert not Subscriber.objects.exists()
