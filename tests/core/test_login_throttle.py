"""Password guessing at the login pages is throttled (django-axes)."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def limit(settings):
    return settings.AXES_FAILURE_LIMIT


def _login(client, url, username, password):
    return client.post(url, {"username": username, "password": password})


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_wrong_passwords_lock_the_account_then_even_the_right_one_is_refused(url, limit):
    get_user_model().objects.create_user("guessed", password="the-right-one-42", is_staff=True)
    get_user_model().objects.create_user("bystander", password="another-one-42", is_staff=True)
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
    get_user_model().objects.create_user("forgetful", password="the-right-one-42")
    client = Client()
    for _ in range(limit - 1):
        _login(client, "/login/", "forgetful", "wrong")
    assert _login(client, "/login/", "forgetful", "the-right-one-42").status_code == 302
    client = Client()
    for _ in range(limit - 1):
        assert _login(client, "/login/", "forgetful", "wrong").status_code == 200
