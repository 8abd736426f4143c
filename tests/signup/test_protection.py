import hashlib

from django.core import mail
from django.test import override_settings

from signup.models import Signup
from signup.protection import pow_valid
from subscribers.models import Subscriber
from tests.support.factories import SignupFormFactory
from tests.support.signup import beat_sweeps, post_step, token_for


def _solve(token: str, bits: int) -> str:
    n = 0
    while not pow_valid(token, format(n, "x"), bits):
        n += 1
    return format(n, "x")


def test_a_bot_filling_the_honeypot_gets_a_normal_answer_and_creates_nobody(
    client, signup_form, eager, no_grace, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        human = post_step(client, signup_form, email="human@example.com", consent="1").json()
        bot = post_step(
            client, signup_form, email="bot@example.com", consent="1", website="http://spam"
        ).json()
    # Same shape as a person's answer (a next step and a signup token), nothing behind it.
    assert bot.keys() == human.keys() and bot["ok"] is True and bot["step"] == 1
    later = post_step(client, signup_form, step=1, signup=bot["signup"], first_name="Bot")
    assert later.status_code == 200 and later.json()["done"] is True
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["human@example.com"]
    beat_sweeps()  # the human left after step 1: their email goes once the grace time is over
    assert [m.to for m in mail.outbox] == [["human@example.com"]]


def test_a_form_filled_faster_than_the_minimum_time_is_refused(client, signup_form):
    signup_form.min_fill_seconds = 3
    signup_form.save()
    response = post_step(
        client,
        signup_form,
        token=token_for(signup_form, age=0.5),
        email="a@example.com",
        consent="1",
    )
    assert response.status_code == 400
    assert "quick" in response.json()["error"]
    assert not Subscriber.objects.exists()
    slow = post_step(
        client, signup_form, token=token_for(signup_form, age=4), email="a@example.com", consent="1"
    )
    assert slow.status_code == 200


def test_a_forged_or_foreign_form_token_is_refused(client, signup_form, topics):
    forged = post_step(client, signup_form, token="x" * 40, email="a@example.com", consent="1")
    assert forged.status_code == 403
    other = SignupFormFactory(name="Other", steps=signup_form.steps)
    foreign = post_step(
        client, signup_form, token=token_for(other), email="a@example.com", consent="1"
    )
    assert foreign.status_code == 403
    assert not Subscriber.objects.exists()


@override_settings(SIGNUP_TOKEN_MAX_AGE=60)
def test_an_expired_form_token_is_refused(client, signup_form):
    response = post_step(
        client,
        signup_form,
        token=token_for(signup_form, age=120),
        email="a@example.com",
        consent="1",
    )
    assert response.status_code == 403
    assert "expired" in response.json()["error"]


@override_settings(SIGNUP_RATE_PER_IP=5)
def test_submissions_are_limited_per_ip(client, signup_form):
    codes = [
        post_step(
            client, signup_form, email=f"p{i}@example.com", consent="1", ip="198.51.100.7"
        ).status_code
        for i in range(7)
    ]
    assert codes == [200] * 5 + [429, 429]
    assert Subscriber.objects.count() == 5
    # Another address (IP) is not affected: the counter is per IP.
    assert (
        post_step(
            client, signup_form, email="q@example.com", consent="1", ip="198.51.100.8"
        ).status_code
        == 200
    )


def test_fifty_quick_submissions_for_one_address_send_at_most_one_confirmation(
    client, signup_form, eager, no_grace, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        answers = [
            post_step(
                client, signup_form, email="victim@example.com", consent="1", ip=f"192.0.2.{i}"
            )
            for i in range(50)
        ]
    # Every one gets the usual answer (nothing tells the flooder it stopped working) ...
    assert {a.status_code for a in answers} == {200}
    # ... one person, one signup, one email.
    assert Subscriber.objects.filter(email="victim@example.com").count() == 1
    assert Signup.objects.count() == 1
    beat_sweeps()
    beat_sweeps()
    assert len(mail.outbox) == 1


@override_settings(SIGNUP_CONFIRMATION_WINDOW=1)
def test_a_new_window_allows_a_new_confirmation_email(
    client, signup_form, eager, no_grace, django_capture_on_commit_callbacks
):
    import time

    with django_capture_on_commit_callbacks(execute=True):
        post_step(client, signup_form, email="ada@example.com", consent="1")
    beat_sweeps()
    time.sleep(1.2)
    with django_capture_on_commit_callbacks(execute=True):
        post_step(client, signup_form, email="ada@example.com", consent="1")
    beat_sweeps()
    assert len(mail.outbox) == 2


@override_settings(SIGNUP_POW_BITS=8)
def test_proof_of_work_is_required_checked_and_spent_once(client, signup_form):
    signup_form.proof_of_work = True
    signup_form.save()
    token = token_for(signup_form)
    missing = post_step(client, signup_form, token=token, email="a@example.com", consent="1")
    assert missing.status_code == 400 and "security check" in missing.json()["error"]
    nonce = _solve(token, 8)
    assert hashlib.sha256(f"{token}:{nonce}".encode()).digest()[0] == 0
    ok = post_step(client, signup_form, token=token, pow=nonce, email="a@example.com", consent="1")
    assert ok.status_code == 200
    replay = post_step(
        client, signup_form, token=token, pow=nonce, email="b@example.com", consent="1"
    )
    assert replay.status_code == 400
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["a@example.com"]


def test_cors_answers_only_allow_listed_origins(client, signup_form):
    url = f"/forms/f/{signup_form.public_id}/config.json"
    allowed = client.get(url, HTTP_ORIGIN="https://shop.example")
    assert allowed.status_code == 200
    assert allowed["Access-Control-Allow-Origin"] == "https://shop.example"
    assert allowed.json()["token"]
    assert "Set-Cookie" not in allowed  # nothing relies on cookies
    refused = client.get(url, HTTP_ORIGIN="https://evil.example")
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused
    post = post_step(
        client, signup_form, email="a@example.com", consent="1", HTTP_ORIGIN="https://evil.example"
    )
    assert post.status_code == 403
    assert not Subscriber.objects.exists()
    preflight = client.options(
        f"/forms/f/{signup_form.public_id}/submit", HTTP_ORIGIN="https://shop.example"
    )
    assert preflight.status_code == 204
    assert preflight["Access-Control-Allow-Origin"] == "https://shop.example"


def test_a_star_allows_any_origin_and_any_framing(client, signup_form):
    signup_form.allowed_origins = "*"
    signup_form.save()
    response = client.get(
        f"/forms/f/{signup_form.public_id}/config.json", HTTP_ORIGIN="https://any.example"
    )
    assert response["Access-Control-Allow-Origin"] == "https://any.example"
    frame = client.get(f"/forms/f/{signup_form.public_id}/frame/")
    assert "frame-ancestors *;" in frame["Content-Security-Policy"] + ";"


def test_the_iframe_may_only_be_framed_by_allowed_sites_and_the_hosted_page_by_none(
    client, signup_form
):
    frame = client.get(f"/forms/f/{signup_form.public_id}/frame/")
    policy = frame["Content-Security-Policy"] + ";"
    assert "frame-ancestors 'self' https://shop.example;" in policy
    assert "script-src 'self'" in policy  # the rest of the policy stays
    page = client.get(f"/forms/f/{signup_form.public_id}/")
    assert page["X-Frame-Options"] == "DENY"


def test_a_submission_needs_no_csrf_cookie(signup_form):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = post_step(
        strict, signup_form, email="a@example.com", consent="1", HTTP_ORIGIN="https://shop.example"
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://shop.example"
