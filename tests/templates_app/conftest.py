import pytest

from templates_app.services import template_create


@pytest.fixture
def smtp_server(django_smtp):
    """A real SMTP server on loopback; Django's SMTP backend is pointed at it."""
    return django_smtp


@pytest.fixture
def canned_reply(db):
    return template_create(
        kind="canned_reply",
        name="Answer coming",
        subject="Re: {{ topic }}",
        html_body='<p>Hi {{ first_name|default:"there" }},</p>'
        "<p>Thanks for your question about {{ topic }}. You will have a full answer by "
        "{{ answer_date }}.</p><p>{{ sender_name }}</p>",
    )
