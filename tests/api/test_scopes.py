import pytest

from subscribers.models import Subscriber, Suppression, Topic
from tests.support.api import error_of
from tests.support.factories import SubscriberFactory, SuppressionFactory


def test_a_read_key_cannot_write(make_api):
    api = make_api("read")
    response = api.post("/subscribers", {"email": "ann@example.com"})
    assert response.status_code == 403
    assert error_of(response)["code"] == "scope_missing"
    assert not Subscriber.objects.exists()
    subscriber = SubscriberFactory()
    assert api.patch(f"/subscribers/{subscriber.pk}", {"first_name": "X"}).status_code == 403
    assert api.delete(f"/subscribers/{subscriber.pk}").status_code == 403
    assert api.post(f"/subscribers/{subscriber.pk}/erase").status_code == 403
    assert Subscriber.objects.get().first_name == "" and Subscriber.objects.get().erased_at is None
    # What it may do.
    assert api.get(f"/subscribers/{subscriber.pk}").status_code == 200


def test_a_send_key_reads_nothing(make_api):
    api = make_api("send")
    SubscriberFactory()
    for path in ("/subscribers", "/topics", "/campaigns", "/events", "/suppressions"):
        response = api.get(path)
        assert response.status_code == 403, path
        assert "read scope" in error_of(response)["message"]


def test_a_write_key_cannot_do_what_needs_admin(make_api):
    api = make_api("write")
    assert api.post("/topics", {"slug": "news", "name": "News"}).status_code == 403
    assert api.post("/fields", {"label": "Plan"}).status_code == 403
    SuppressionFactory(email="gone@example.org")
    assert api.delete("/suppressions/gone@example.org").status_code == 403
    assert not Topic.objects.exists() and Suppression.objects.count() == 1
    admin = make_api("admin")
    assert admin.post("/topics", {"slug": "news", "name": "News"}).status_code == 201
    assert admin.delete("/suppressions/gone@example.org").status_code == 204


@pytest.mark.parametrize("scope", ["read", "write", "send", "admin"])
def test_each_scope_reaches_exactly_what_it_grants(make_api, scope):
    api = make_api(scope)
    can_read = scope in ("read", "write", "admin")
    can_write = scope in ("write", "admin")
    assert (api.get("/subscribers").status_code == 200) == can_read
    created = api.post("/subscribers", {"email": f"{scope}@example.com"})
    assert (created.status_code == 201) == can_write
