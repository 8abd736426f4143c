"""Password guessing at the login pages is throttled (django-axes)."""

import pytest
from django.test import Client

from tests.support.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def limit(settings):
    return settings.AXES_FAILURE_LIMIT


def _login(client, url, username, password):
    return client.post(url, {"username": username, "password": password})


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_wrong_passwords_lock_the_account_then_even_the_right_one_is_refused(url, limit):
    UserFactory(username="guessed", password="the-right-one-42", is_staff=True, role=None)
    UserFactory(username="bystander", password="another-one-42", is_staff=True, role=None)
    client = Client()
    for _ in range(limit - 1):
        response = _login(client, url, "guessed", "wrong")
        assert response.status_code == 200 and b"correct username and password" in response.content
    response = _login(client, url, "guessed", "wrong")
    assert response.status_code == 429
    response = _login(client, url, "guessed", "the-right-one-42")
    assert response.status_code == 429 and b"Too many failed logins" in response.content
    assert "_auth_user_id" not in client.session
    # Only that username from that address: a colleague behind the same proxy still logs in.
    assert _login(Client(), url, "bystander", "another-one-42").status_code == 302


def test_a_successful_login_forgets_earlier_failures(limit):
    UserFactory(username="forgetful", password="the-right-one-42", role=None)
    client = Client()
    for _ in range(limit - 1):
        _login(client, "/login/", "forgetful", "wrong")
    assert _login(client, "/login/", "forgetful", "the-right-one-42").status_code == 302
    client = Client()
    for _ in range(limit - 1):
        assert _login(client, "/login/", "forgetful", "wrong").status_code == 200
