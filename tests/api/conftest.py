import pytest
from django.core.cache import cache
from django.test import Client

from api.keys import api_key_create


@pytest.fixture(autouse=True)
def _fresh_counters():
    """Rate limits live in Redis: each test starts with none."""
    cache.clear()
    yield
    cache.clear()


class Api:
    """The test client speaking to /api/v1/ with a real ``Authorization: Bearer`` header."""

    def __init__(self, token: str | None, **defaults):
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        self.client = Client(**headers, **defaults)
        self.token = token

    def _url(self, path: str) -> str:
        return "/api/v1" + path

    def get(self, path, params=None, **headers):
        return self.client.get(self._url(path), params or {}, **headers)

    def post(self, path, body=None, **headers):
        return self.client.post(
            self._url(path),
            body if body is not None else {},
            content_type="application/json",
            **headers,
        )

    def patch(self, path, body, **headers):
        return self.client.patch(self._url(path), body, content_type="application/json", **headers)

    def delete(self, path, **headers):
        return self.client.delete(self._url(path), **headers)


@pytest.fixture
def make_api(db):
    """``make_api("read", "write", allowed_networks=[...], rate_per_minute=...)``: a new key
    (``.key``) and a client that sends it."""

    def make(*scopes, **options):
        new = api_key_create(name=f"test {'+'.join(scopes)}", scopes=list(scopes), **options)
        api = Api(new.token)
        api.key = new.key
        return api

    return make


@pytest.fixture
def api(make_api):
    return make_api("write")


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "field"}, body
    return body["error"]


@pytest.fixture
def eager():
    from nofailmail.celery import app as celery_app

    before = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    celery_app.conf.update(task_always_eager=before[0], task_eager_propagates=before[1])
