import pytest
from django.core.cache import cache

from campaigns.models import Campaign, SendingConnection
from nofailmail.celery import app as celery_app
from subscribers.models import Subscriber, Subscription, Topic
from templates_app.models import Template, TemplateVersion

HTML = (
    '<html><body><h1>Hello {{ first_name|default:"friend" }}</h1>'
    '<p>Read <a href="https://example.com/a">the news</a> and '
    '<a href="https://example.com/b">more</a>.</p></body></html>'
)


def make_template(html=HTML, subject='News for {{ first_name|default:"you" }}', text=""):
    template = Template.objects.create(
        name="Weekly", subject=subject, html_body=html, text_body=text, current_version=1
    )
    TemplateVersion.objects.create(
        template=template, number=1, subject=subject, html_body=html, text_body=text
    )
    return template


def make_audience(
    n, *, topic=None, prefix="user", status=Subscriber.Status.ACTIVE, domain="example.org"
):
    topic = topic or Topic.objects.get_or_create(slug="weekly", defaults={"name": "Weekly"})[0]
    subs = Subscriber.objects.bulk_create(
        [
            Subscriber(email=f"{prefix}{i}@{domain}", first_name=f"F{i}", status=status)
            for i in range(n)
        ]
    )
    Subscription.objects.bulk_create([Subscription(subscriber=s, topic=topic) for s in subs])
    return topic, subs


def make_campaign(*, topic, connection=None, **fields):
    campaign = Campaign.objects.create(
        name=fields.pop("name", "Launch"),
        template=fields.pop("template", None) or make_template(),
        from_email="news@sender.example",
        from_name=fields.pop("from_name", "Sender"),
        connection=connection,
        **fields,
    )
    campaign.topics.add(topic)
    return campaign


def message_id(delivery_id: int, campaign) -> str:
    """The Message-ID the pipeline gives a delivery (its install-unique tag included)."""
    from campaigns.messages import message_id_tag

    return f"<d{delivery_id}.c{campaign.pk}.{message_id_tag(campaign)}@sender.example>"


def smtp_connection(sink, **fields):
    return SendingConnection.objects.create(
        name=fields.pop("name", "sink"),
        backend="django.core.mail.backends.smtp.EmailBackend",
        options={"host": "127.0.0.1", "port": sink.port},
        sending_domain="sender.example",
        **fields,
    )


QUEUE = "campaigns-test"
TTL = "3"


@pytest.fixture
def own_queue(monkeypatch):
    """Our workers and the tasks we send use a queue no other test worker listens to."""
    monkeypatch.setenv("CAMPAIGN_CLAIM_TTL", TTL)
    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = QUEUE
    try:
        yield
    finally:
        celery_app.conf.task_default_queue = previous


def forget_campaign_keys(campaign_id):
    """Test databases restart ids at 1: drop short-lived keys a previous run left for this id."""
    cache.delete_many([f"nfm:kick:{campaign_id}", f"nfm:campaign-alive:{campaign_id}"])
