"""Submissions racing for one address (double clicks, a bot hammering) in parallel requests."""

import threading

from django.core import mail
from django.db import connection
from django.test import Client

from signup.models import Signup
from subscribers.models import Subscriber
from tests.support.factories import SubscriberFactory
from tests.support.signup import post_step, token_for


def _race(form, emails: list[str]) -> list[int]:
    token = token_for(form)
    barrier = threading.Barrier(len(emails))
    codes: list[int] = []

    def submit(email: str, n: int) -> None:
        try:
            barrier.wait()
            response = post_step(
                Client(), form, token=token, email=email, consent="1", ip=f"198.51.100.{n}"
            )
            codes.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(e, n)) for n, e in enumerate(emails)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def test_parallel_submissions_of_a_new_address_make_one_subscriber_and_one_email(
    transactional_db, signup_form, eager
):
    codes = _race(signup_form, ["race@example.com"] * 6)
    assert codes == [200] * 6
    assert Subscriber.objects.count() == 1
    assert Signup.objects.count() == 1
    assert len(mail.outbox) <= 1


def test_parallel_submissions_of_a_known_address_make_one_signup(
    transactional_db, signup_form, eager
):
    SubscriberFactory(email="known@example.com")
    codes = _race(signup_form, ["Known@Example.com"] * 6)
    assert codes == [200] * 6
    assert Subscriber.objects.count() == 1
    assert Signup.objects.count() == 1
