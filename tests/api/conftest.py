import pytest
from django.core.cache import cache

from api.keys import api_key_create
from tests.support.api import Api


@pytest.fixture(autouse=True)
def _fresh_counters():
    """Rate limits live in Redis: each test starts with none."""
    cache.clear()
    yield
    cache.clear()


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


@pytest.fixture
def eager():
    from nofailmail.celery import app as celery_app

    before = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    celery_app.conf.update(task_always_eager=before[0], task_eager_propagates=before[1])
