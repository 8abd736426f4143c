from django.core import mail

from signup.models import Signup, SignupForm
from subscribers.models import ConsentRecord, Subscriber, Subscription
from tests.support.factories import SubscriberFactory
from tests.support.signup import beat_sweeps, post_step, token_for


def test_step_one_saves_the_email_at_once_unconfirmed(
    client, signup_form, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_step(client, signup_form, email="Ada@Example.COM", consent="1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is True and body["step"] == 1 and body["signup"]
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "ada@example.com"
    assert subscriber.status == Subscriber.Status.UNCONFIRMED
    assert subscriber.source == Subscriber.Source.FORM
    signup = Signup.objects.get()
    assert signup.steps_completed == 1 and signup.confirmed_at is None
    # Topics wait for the confirmation: an unconfirmed address is on no list.
    assert not Subscription.objects.exists()
    assert not ConsentRecord.objects.exists()
    # The confirmation email waits for step 2 (it asks the name the email greets).
    assert mail.outbox == [] and signup.confirmation_due_at > signup.created_at


def test_later_steps_add_to_the_same_subscriber(
    client, signup_form, topics, eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = post_step(client, signup_form, email="ada@example.com", consent="1").json()
        second = post_step(
            client,
            signup_form,
            step=1,
            signup=first["signup"],
            first_name="Ada",
            attr_company="Analytical Engines",
            attr_employees="12",
            topics=[str(topics[1].pk)],
        )
    assert second.status_code == 200, second.content
    assert second.json()["done"] is True
    subscriber = Subscriber.objects.get()
    assert subscriber.first_name == "Ada"
    assert subscriber.attributes == {"company": "Analytical Engines", "employees": 12}
    signup = Signup.objects.get()
    assert signup.steps_completed == 2
    assert signup.pending["topic_ids"] == [topics[1].pk]


def test_the_same_address_submitted_twice_makes_one_subscriber(
    client, signup_form, eager, no_grace, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_step(client, signup_form, email="ada@example.com", consent="1")
        post_step(client, signup_form, email=" ADA@example.com ", consent="1")
    beat_sweeps()
    assert Subscriber.objects.count() == 1
    assert Signup.objects.count() == 1
    # The second submission falls in the same confirmation window: one email only.
    assert len(mail.outbox) == 1


def test_field_errors_come_back_per_field_in_the_form_language(client, signup_form):
    signup_form.language = "fr"
    signup_form.save()
    response = post_step(client, signup_form, email="not-an-address")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["email"] == "Saisissez une adresse e-mail valide."
    assert errors["consent"] == "Ce champ est obligatoire."
    assert not Subscriber.objects.exists()


def test_a_typed_attribute_is_checked(client, signup_form, eager):
    first = post_step(client, signup_form, email="ada@example.com", consent="1").json()
    response = post_step(
        client, signup_form, step=1, signup=first["signup"], first_name="Ada", attr_employees="many"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == {"attr_employees": "Enter a number."}
    assert Subscriber.objects.get().attributes == {}


def test_disposable_addresses_are_refused_when_the_form_says_so(client, signup_form):
    response = post_step(client, signup_form, email="x@mailinator.com", consent="1")
    assert response.status_code == 200  # off by default
    signup_form.reject_disposable = True
    signup_form.save()
    response = post_step(client, signup_form, email="y@eu.mailinator.com", consent="1")
    assert response.status_code == 400
    assert response.json()["errors"]["email"] == "Please use a permanent email address."
    assert not Subscriber.objects.filter(email="y@eu.mailinator.com").exists()


def test_an_anonymous_submission_does_not_change_a_confirmed_subscriber(
    client, signup_form, eager, django_capture_on_commit_callbacks
):
    SubscriberFactory(email="ada@example.com", first_name="Ada", status=Subscriber.Status.ACTIVE)
    with django_capture_on_commit_callbacks(execute=True):
        first = post_step(client, signup_form, email="ada@example.com", consent="1").json()
        post_step(client, signup_form, step=1, signup=first["signup"], first_name="Mallory")
    subscriber = Subscriber.objects.get()
    assert subscriber.first_name == "Ada"
    assert Signup.objects.get().pending["names"] == {"first_name": "Mallory"}
    # The owner is asked to confirm; only then do the answers apply.
    assert len(mail.outbox) == 1


def test_without_double_opt_in_the_subscriber_is_active_at_once(
    client, signup_form, topics, eager, django_capture_on_commit_callbacks
):
    signup_form.double_opt_in = False
    signup_form.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_step(client, signup_form, email="ada@example.com", consent="1")
    assert response.status_code == 200
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert set(subscriber.subscriptions.values_list("topic", flat=True)) == {t.pk for t in topics}
    record = ConsentRecord.objects.get()
    assert (record.text, record.version, record.ip) == (
        "I agree to receive the weekly letter.",
        "v3",
        "203.0.113.5",
    )
    assert mail.outbox == []  # no lead magnet, no welcome template: nothing to send


def test_the_form_works_without_javascript(client, signup_form, eager):
    """The iframe fallback: plain HTML posts, each answer is the next page."""
    page = client.get(f"/forms/f/{signup_form.public_id}/frame/")
    assert page.status_code == 200
    token = page.context["token"]
    response = client.post(
        f"/forms/f/{signup_form.public_id}/submit",
        {"token": token, "step": "0", "mode": "frame", "email": "ada@example.com", "consent": "1"},
    )
    assert response.status_code == 200
    assert b'name="first_name"' in response.content
    assert "frame-ancestors 'self' https://shop.example" in response["Content-Security-Policy"]
    assert "X-Frame-Options" not in response
    signup_token = response.context["signup_token"]
    done = client.post(
        f"/forms/f/{signup_form.public_id}/submit",
        {"token": token, "step": "1", "mode": "frame", "signup": signup_token, "first_name": "Ada"},
    )
    assert b"Check your inbox" in done.content
    assert Subscriber.objects.get().first_name == "Ada"


def test_an_inactive_form_is_not_found(client, signup_form):
    SignupForm.objects.filter(pk=signup_form.pk).update(is_active=False)
    assert client.get(f"/forms/f/{signup_form.public_id}/").status_code == 404
    assert post_step(client, signup_form, email="a@example.com", consent="1").status_code == 404


def test_a_broken_stored_theme_falls_back_to_the_defaults_and_never_reaches_the_css(
    client, signup_form
):
    SignupForm.objects.filter(pk=signup_form.pk).update(
        theme={"primary_color": "red;}</style><script>alert(1)</script>"}
    )
    page = client.get(f"/forms/f/{signup_form.public_id}/")
    assert page.status_code == 200
    assert b"<script>alert(1)" not in page.content
    assert b"--nfm-primary: #0d6efd" in page.content


def test_a_form_can_redirect_after_the_last_step(client, signup_form, eager):
    signup_form.success_action = SignupForm.SuccessAction.REDIRECT
    signup_form.redirect_url = "https://shop.example/thanks"
    signup_form.save()
    first = post_step(client, signup_form, email="ada@example.com", consent="1").json()
    done = post_step(client, signup_form, step=1, signup=first["signup"], first_name="Ada")
    assert done.json()["redirect"] == "https://shop.example/thanks"
    # Without JavaScript (hosted page, iframe) the answer is the redirect itself.
    html = client.post(
        f"/forms/f/{signup_form.public_id}/submit",
        {
            "token": token_for(signup_form),
            "step": "1",
            "signup": first["signup"],
            "first_name": "Ada",
        },
    )
    assert html.status_code == 302 and html["Location"] == "https://shop.example/thanks"
