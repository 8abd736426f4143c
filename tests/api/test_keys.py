import re

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from api.keys import token_hash
from api.models import ApiKey, ApiWriteLog
from tests.support.api import Api, error_of


def _new_key_from_settings(admin_client, **fields) -> str:
    data = {"name": "Shop backend", "scopes": ["write"], "rate_per_minute": "1200", **fields}
    page = admin_client.post("/settings/api-keys/", data)
    assert page.status_code == 200, page.content
    match = re.search(rb'id="new-token" readonly value="(nfm_[^"]+)"', page.content)
    assert match, page.content.decode()[:2000]
    return match.group(1).decode()


def test_an_admin_makes_a_key_in_settings_shown_once_and_stored_hashed(admin_client):
    token = _new_key_from_settings(admin_client)
    key = ApiKey.objects.get()
    assert key.key_hash == token_hash(token) and token not in str(ApiKey.objects.values().get())
    assert key.prefix == token[:12] and key.scopes == ["write"]
    # The list shows the prefix, never the token again.
    listing = admin_client.get("/settings/api-keys/")
    assert key.prefix.encode() in listing.content and token.encode() not in listing.content
    assert Api(token).post("/subscribers", {"email": "ann@example.com"}).status_code == 201


def test_the_same_form_sent_twice_makes_one_key(admin_client):
    """A reload of the page that showed the token re-sends the form: no second key."""
    page = admin_client.get("/settings/api-keys/").content.decode()
    once = re.search(r'name="once" value="([^"]+)"', page).group(1)
    data = {"name": "Shop backend", "scopes": ["write"], "rate_per_minute": "1200", "once": once}
    first = admin_client.post("/settings/api-keys/", data)
    assert b'id="new-token"' in first.content
    again = admin_client.post("/settings/api-keys/", data, follow=True)
    assert b'id="new-token"' not in again.content and b"already sent" in again.content
    assert ApiKey.objects.count() == 1
    # The next form the page renders is a new one.
    assert f'value="{once}"' not in admin_client.get("/settings/api-keys/").content.decode()


def test_only_admins_reach_the_keys_page(editor_client):
    assert editor_client.get("/settings/api-keys/").status_code == 403
    assert editor_client.post("/settings/api-keys/", {"name": "x"}).status_code == 403
    assert not ApiKey.objects.exists()


def test_a_revoked_key_no_longer_opens_the_api(admin_client):
    token = _new_key_from_settings(admin_client)
    api = Api(token)
    assert api.get("/subscribers").status_code == 200
    key = ApiKey.objects.get()
    assert admin_client.post(f"/settings/api-keys/{key.pk}/revoke").status_code == 302
    response = api.get("/subscribers")
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"


def test_no_key_or_a_wrong_key_is_401_in_the_error_shape(db):
    for api in (Api(None), Api("nfm_not-a-real-key"), Api("garbage")):
        response = api.get("/subscribers")
        assert response.status_code == 401
        assert error_of(response)["code"] == "unauthorized"
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_key_limited_to_a_network_is_refused_from_elsewhere(make_api):
    api = make_api("read", allowed_networks=["203.0.113.0/24"])
    inside = api.get("/subscribers", REMOTE_ADDR="203.0.113.7")
    assert inside.status_code == 200
    outside = api.get("/subscribers", REMOTE_ADDR="198.51.100.7")
    assert outside.status_code == 403
    assert error_of(outside)["code"] == "ip"


def test_the_rate_limit_answers_429_with_retry_after(make_api):
    api = make_api("read", rate_per_minute=3)
    assert [api.get("/subscribers").status_code for _ in range(3)] == [200, 200, 200]
    response = api.get("/subscribers")
    assert response.status_code == 429
    assert error_of(response)["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    # Another key has its own budget.
    assert make_api("read").get("/subscribers").status_code == 200


def test_last_use_is_recorded_at_most_once_a_minute(make_api):
    api = make_api("read")
    assert api.get("/subscribers").status_code == 200
    key = ApiKey.objects.get()
    first = key.last_used_at
    assert first is not None and key.last_used_ip == "127.0.0.1"
    with CaptureQueriesContext(connection) as queries:
        assert api.get("/subscribers").status_code == 200
    # Within the minute, not even a (conditional) UPDATE is sent.
    assert not [q for q in queries.captured_queries if q["sql"].startswith('UPDATE "api_apikey"')]
    assert ApiKey.objects.get().last_used_at == first
    ApiKey.objects.update(last_used_at=timezone.now() - timezone.timedelta(minutes=2))
    assert api.get("/subscribers").status_code == 200
    assert ApiKey.objects.get().last_used_at > first


def test_every_write_is_logged_with_the_key_that_made_it(make_api):
    writer, other = make_api("write"), make_api("write")
    assert writer.post("/subscribers", {"email": "ann@example.com"}).status_code == 201
    assert writer.get("/subscribers").status_code == 200  # a read is not logged
    log = ApiWriteLog.objects.get()
    assert log.key == writer.key and log.method == "POST" and log.path == "/api/v1/subscribers"
    assert log.status == 201
    assert other.key.writes.count() == 0


def test_a_dashboard_session_does_not_open_the_api(admin_client):
    # Cookies never authenticate the API (hence no CSRF exposure): only a bearer key does.
    response = admin_client.post(
        "/api/v1/subscribers", {"email": "ann@example.com"}, content_type="application/json"
    )
    assert response.status_code == 401


def test_a_forwarded_address_that_is_not_an_address_is_logged_as_none(make_api, settings):
    """Behind a proxy the client's address comes from X-Forwarded-For: junk there must not
    turn a write into a server error; the key's last use and the log keep no address."""
    settings.SIGNUP_TRUST_X_FORWARDED_FOR = True
    api = make_api("write")
    response = api.post(
        "/subscribers", {"email": "ann@example.com"}, HTTP_X_FORWARDED_FOR="not an address"
    )
    assert response.status_code == 201, response.content
    assert ApiWriteLog.objects.get().ip is None
    assert ApiKey.objects.get().last_used_ip is None
