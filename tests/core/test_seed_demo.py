from io import StringIO

from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory

from subscribers.models import Subscriber, Topic


def test_seed_demo_prints_a_login_that_works_and_is_idempotent(db):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    line = next(line for line in out.getvalue().splitlines() if "Log in as:" in line)
    password = line.split("password:")[1].strip()
    login = RequestFactory().post("/login/")  # the login throttle needs the request
    assert authenticate(login, username="admin", password=password) is not None
    assert Topic.objects.count() == 3
    assert Subscriber.objects.count() == 1000
    call_command("seed_demo", stdout=StringIO())
    assert Subscriber.objects.count() == 1000
