"""The one way the suite builds data: factory_boy factories for the core models.

Defaults are the values the tests have always relied on (a "Launch" campaign from
news@sender.example with the "Weekly" template, subscribers at example.org ...), so a bare
``CampaignFactory(topic=topic)`` is sendable as soon as it has a connection. The common shapes
are traits or keyword arguments:

    UserFactory(role=Role.EDITOR)
    TopicFactory(slug="weekly")
    SubscriberFactory(active=True, topics=[weekly])       # confirmed, subscribed
    TemplateFactory(html_body="<p>Hi</p>")                # and its version 1, the same
    SendingConnectionFactory(sink=smtp_sink)              # Django's SMTP backend at the sink
    CampaignFactory(topic=weekly, connection=...)         # audience: everyone on the topic
    CampaignFactory(bare=True, name="A")                  # no template, no sender
    CampaignFactory(sent=True, recipients=3)              # went out: links, sent deliveries
    topic, subscribers = make_audience(500)               # bulk: two INSERTs
    campaign, links, deliveries = create_sent_campaign()  # the analytics tests' shape
"""

from datetime import date, timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule
from factory.django import DjangoModelFactory

from analytics.models import (
    CampaignSeries,
    CampaignStats,
    CampaignTracking,
    DomainDaily,
    Event,
    Link,
    ReadinessRun,
    ReputationAlert,
    SendingDomain,
    SubscriberEngagement,
    SunsetPolicy,
)
from campaigns.models import Campaign, Delivery, SandboxMessage, SendingConnection
from core.roles import Role, user_set_role
from preferences.models import ExitSurveyReason, ExitSurveyResponse
from signup.models import FormView, LeadMagnet, Signup, SignupForm
from subscribers.models import (
    CustomField,
    ImportJob,
    ImportRejection,
    Segment,
    Subscriber,
    Subscription,
    Suppression,
    Topic,
    email_hash,
)
from templates_app.models import Layout, SentReply, Template, TemplateVersion

HTML = (
    '<html><body><h1>Hello {{ first_name|default:"friend" }}</h1>'
    '<p>Read <a href="https://example.com/a">the news</a> and '
    '<a href="https://example.com/b">more</a>.</p></body></html>'
)
SUBJECT = 'News for {{ first_name|default:"you" }}'
# What a sent campaign links to (CampaignFactory(sent=True)).
SENT_LINKS = ["https://shop.example.org/sale", "https://example.org/blog?x=1"]
# Where a sent campaign's readers have their mailboxes, in turn.
READER_DOMAINS = ["gmail.com", "outlook.com", "example.net"]


# --- People ------------------------------------------------------------------------------------


class UserFactory(DjangoModelFactory):
    """A dashboard user with a role (``role=None``: no role at all); password ``pw-<name>``."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user-{n}")
    password = factory.LazyAttribute(lambda user: f"pw-{user.username}")
    role = Role.VIEWER

    @classmethod
    def _create(cls, model_class, *args, role=None, **kwargs):
        user = model_class._default_manager.create_user(*args, **kwargs)
        if role:
            user_set_role(user=user, role=Role(role))
        return user


# --- Subscribers -------------------------------------------------------------------------------


class TopicFactory(DjangoModelFactory):
    class Meta:
        model = Topic
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"topic-{n}")
    name = factory.LazyAttribute(lambda topic: topic.slug.replace("-", " ").capitalize())


class SubscriberFactory(DjangoModelFactory):
    """``topics=[...]`` subscribes them; ``active=True`` is a confirmed, active subscriber."""

    class Meta:
        model = Subscriber
        skip_postgeneration_save = True

    class Params:
        active = factory.Trait(
            status=Subscriber.Status.ACTIVE, confirmed_at=factory.LazyFunction(timezone.now)
        )

    email = factory.Sequence(lambda n: f"person{n}@example.org")

    @factory.post_generation
    def topics(subscriber, create, extracted, **kwargs):
        for topic in extracted if create and extracted else ():
            SubscriptionFactory(subscriber=subscriber, topic=topic, **kwargs)


class SubscriptionFactory(DjangoModelFactory):
    class Meta:
        model = Subscription

    subscriber = factory.SubFactory(SubscriberFactory)
    topic = factory.SubFactory(TopicFactory)


class SuppressionFactory(DjangoModelFactory):
    """``hash_of="a@b"``: only the address's hash is stored (as after an erasure)."""

    class Meta:
        model = Suppression

    class Params:
        hash_of = None

    email = factory.Maybe("hash_of", "", factory.Sequence(lambda n: f"suppressed{n}@example.org"))
    email_hash = factory.LazyAttribute(lambda row: email_hash(row.hash_of or row.email))
    reason = Suppression.Reason.MANUAL


class CustomFieldFactory(DjangoModelFactory):
    class Meta:
        model = CustomField
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"field{n}")
    label = factory.LazyAttribute(lambda field: field.key.replace("_", " ").capitalize())
    type = CustomField.Type.TEXT


class SegmentFactory(DjangoModelFactory):
    class Meta:
        model = Segment

    name = factory.Sequence(lambda n: f"Segment {n}")
    rules = factory.LazyFunction(lambda: {"match": "all", "rules": []})


class ImportJobFactory(DjangoModelFactory):
    class Meta:
        model = ImportJob

    file = "imports/people.csv"
    original_name = factory.LazyAttribute(lambda job: str(job.file).rsplit("/", 1)[-1])


class ImportRejectionFactory(DjangoModelFactory):
    class Meta:
        model = ImportRejection

    job = factory.SubFactory(ImportJobFactory)
    line = factory.Sequence(lambda n: n + 2)
    reason = "invalid"


def make_audience(
    n, *, topic=None, prefix="user", status=Subscriber.Status.ACTIVE, domain="example.org"
):
    """``n`` subscribers ``<prefix><i>@<domain>`` on ``topic`` (the "weekly" one by default),
    written in two INSERTs so an audience of hundreds costs no more than one of three."""
    topic = topic or TopicFactory(slug="weekly", name="Weekly")
    subscribers = Subscriber.objects.bulk_create(
        [
            SubscriberFactory.build(
                email=f"{prefix}{i}@{domain}", first_name=f"F{i}", status=status
            )
            for i in range(n)
        ]
    )
    Subscription.objects.bulk_create(
        [SubscriptionFactory.build(subscriber=s, topic=topic) for s in subscribers]
    )
    return topic, subscribers


# --- Templates ---------------------------------------------------------------------------------


class LayoutFactory(DjangoModelFactory):
    class Meta:
        model = Layout

    name = "Basic"
    html = "<html><body>{{ content }}</body></html>"


class TemplateFactory(DjangoModelFactory):
    """A newsletter template and its version 1 (what a campaign compiles from)."""

    class Meta:
        model = Template
        skip_postgeneration_save = True

    name = "Weekly"
    subject = SUBJECT
    html_body = HTML
    text_body = ""
    current_version = 1

    @factory.post_generation
    def version(template, create, extracted, **kwargs):
        if create and template.current_version:
            TemplateVersionFactory(
                template=template,
                number=template.current_version,
                subject=template.subject,
                preheader=template.preheader,
                html_body=template.html_body,
                text_body=template.text_body,
                **kwargs,
            )


class TemplateVersionFactory(DjangoModelFactory):
    class Meta:
        model = TemplateVersion

    template = factory.SubFactory(TemplateFactory, current_version=0)
    number = 1
    subject = factory.SelfAttribute("template.subject")
    html_body = factory.SelfAttribute("template.html_body")
    text_body = factory.SelfAttribute("template.text_body")


class SentReplyFactory(DjangoModelFactory):
    """A canned reply sent to ``subscriber`` (to their address)."""

    class Meta:
        model = SentReply

    subscriber = factory.SubFactory(SubscriberFactory)
    to_email = factory.LazyAttribute(
        lambda reply: reply.subscriber.email if reply.subscriber else "someone@example.org"
    )
    subject = "Re: your question"
    text = ""
    html = ""


# --- Sending -----------------------------------------------------------------------------------


class SendingConnectionFactory(DjangoModelFactory):
    """Django's SMTP backend (the model's default); ``sink=smtp_sink`` points it at that sink,
    names the connection "sink" and sends as sender.example."""

    class Meta:
        model = SendingConnection
        django_get_or_create = ("name",)

    class Params:
        sink = None

    name = factory.LazyAttributeSequence(lambda conn, n: "sink" if conn.sink else f"connection-{n}")
    sending_domain = factory.Maybe("sink", "sender.example", "")
    options = factory.Maybe(
        "sink",
        yes_declaration=factory.LazyAttribute(
            lambda conn: {"host": "127.0.0.1", "port": conn.sink.port}
        ),
        no_declaration=factory.LazyFunction(dict),
    )


class SendingDomainFactory(DjangoModelFactory):
    class Meta:
        model = SendingDomain
        django_get_or_create = ("domain",)

    domain = "sender.example"


class ReadinessRunFactory(DjangoModelFactory):
    class Meta:
        model = ReadinessRun

    domain = factory.SubFactory(SendingDomainFactory)
    token = factory.Sequence(lambda n: f"run{n}")


class DomainDailyFactory(DjangoModelFactory):
    class Meta:
        model = DomainDaily

    domain = "sender.example"
    day = factory.LazyFunction(date.today)


class ReputationAlertFactory(DjangoModelFactory):
    """An open critical complaint-rate alert on the domain ``key`` (sender.example)."""

    class Meta:
        model = ReputationAlert

    scope = ReputationAlert.Scope.DOMAIN
    key = "sender.example"
    metric = ReputationAlert.Metric.COMPLAINTS
    level = ReputationAlert.Level.CRITICAL
    rate = 0.005
    volume = 400
    message = factory.LazyAttribute(
        lambda alert: f"{alert.metric} of {alert.key} is {alert.rate:.2%} ({alert.level})."
    )


class IntervalScheduleFactory(DjangoModelFactory):
    """A celery beat interval (django-celery-beat's table)."""

    class Meta:
        model = IntervalSchedule
        django_get_or_create = ("every", "period")

    every = 1
    period = IntervalSchedule.SECONDS


class CampaignFactory(DjangoModelFactory):
    """A draft "Launch" campaign with its own template; ``topic=`` (or ``topics=[...]``) is
    its audience. ``bare=True``: no template and no sender. ``sent=True``: a finished "Spring
    sale" from hello@<domain> (``domain=``) with two links and ``recipients`` (3) sent
    deliveries, ``recipients__sent_ago`` (2 hours) ago."""

    class Meta:
        model = Campaign
        skip_postgeneration_save = True

    class Params:
        # Only what the test gives it: no template, no sender (a row for a list or a report).
        bare = factory.Trait(template=None, from_email="", from_name="")
        domain = "news.example.com"
        sent = factory.Trait(
            name="Spring sale",
            status=Campaign.Status.FINISHED,
            template=None,
            from_name="",
            from_email=factory.LazyAttribute(lambda campaign: f"hello@{campaign.domain}"),
            connection=factory.SubFactory(
                SendingConnectionFactory,
                name=factory.LazyAttribute(lambda conn: f"conn-{conn.factory_parent.domain}"),
                sending_domain=factory.SelfAttribute("..domain"),
            ),
        )

    name = "Launch"
    template = factory.SubFactory(TemplateFactory)
    from_email = "news@sender.example"
    from_name = "Sender"
    connection = None

    @factory.post_generation
    def topic(campaign, create, extracted, **kwargs):
        if create and extracted is not None:
            campaign.topics.add(extracted)

    @factory.post_generation
    def topics(campaign, create, extracted, **kwargs):
        if create and extracted:
            campaign.topics.add(*extracted)

    links = factory.Maybe(
        "sent",
        yes_declaration=factory.PostGeneration(
            lambda campaign, create, extracted, **kwargs: _add_links(
                campaign, SENT_LINKS if extracted is None else extracted
            )
        ),
        no_declaration=factory.PostGeneration(
            lambda campaign, create, extracted, **kwargs: _add_links(campaign, extracted or ())
        ),
    )
    recipients = factory.Maybe(
        "sent",
        yes_declaration=factory.PostGeneration(
            lambda campaign, create, extracted, **kwargs: _add_recipients(
                campaign, 3 if extracted is None else extracted, **kwargs
            )
        ),
        no_declaration=factory.PostGeneration(
            lambda campaign, create, extracted, **kwargs: _add_recipients(
                campaign, extracted or 0, **kwargs
            )
        ),
    )


def _add_links(campaign, urls):
    for index, url in enumerate(urls):
        LinkFactory(campaign=campaign, index=index, url=url)


def _add_recipients(campaign, n, *, sent_ago=timedelta(hours=2), **fields):
    """reader<i>@gmail.com, @outlook.com, @example.net ... (the same people for every sent
    campaign), each with a sent delivery whose Message-ID names this campaign."""
    domain = campaign.connection.sending_domain if campaign.connection else "sender.example"
    for i in range(n):
        email = f"reader{i}@{READER_DOMAINS[i % len(READER_DOMAINS)]}"
        subscriber, _ = Subscriber.objects.get_or_create(
            email=email, defaults={"status": Subscriber.Status.ACTIVE}
        )
        DeliveryFactory(
            campaign=campaign,
            subscriber=subscriber,
            status=Delivery.Status.SENT,
            sent_at=timezone.now() - sent_ago,
            message_id=f"<msg-{campaign.pk}-{i}@{domain}>",
            **fields,
        )


def create_sent_campaign(*, n=3, sent_ago=timedelta(hours=2), **fields):
    """``(campaign, links, deliveries)`` of ``CampaignFactory(sent=True)``."""
    campaign = CampaignFactory(sent=True, recipients=n, recipients__sent_ago=sent_ago, **fields)
    return campaign, list(campaign.links.all()), list(campaign.deliveries.order_by("pk"))


class DeliveryFactory(DjangoModelFactory):
    """One row of a campaign's ledger, for the subscriber's address."""

    class Meta:
        model = Delivery

    campaign = factory.SubFactory(CampaignFactory)
    subscriber = factory.SubFactory(SubscriberFactory, status=Subscriber.Status.ACTIVE)
    email = factory.SelfAttribute("subscriber.email")
    email_hash = factory.LazyAttribute(lambda delivery: email_hash(delivery.email))
    domain = factory.LazyAttribute(lambda delivery: delivery.email.split("@")[1])


class LinkFactory(DjangoModelFactory):
    class Meta:
        model = Link

    campaign = factory.SubFactory(CampaignFactory)
    index = factory.Sequence(lambda n: n)
    url = factory.Sequence(lambda n: f"https://example.org/page-{n}")


class EventFactory(DjangoModelFactory):
    """A fact about a delivery (``delivery=``: its ids and hash are copied)."""

    class Meta:
        model = Event

    class Params:
        delivery = None

    uid = factory.Sequence(lambda n: f"test:{n}")
    kind = Event.Kind.DELIVERED
    occurred_at = factory.LazyFunction(timezone.now)
    delivery_id = factory.LazyAttribute(lambda e: e.delivery.pk if e.delivery else None)
    campaign_id = factory.LazyAttribute(lambda e: e.delivery.campaign_id if e.delivery else None)
    subscriber_id = factory.LazyAttribute(
        lambda e: e.delivery.subscriber_id if e.delivery else None
    )
    email_hash = factory.LazyAttribute(lambda e: e.delivery.email_hash if e.delivery else "")


class CampaignTrackingFactory(DjangoModelFactory):
    class Meta:
        model = CampaignTracking

    campaign = factory.SubFactory(CampaignFactory)
    mode = CampaignTracking.Mode.INDIVIDUAL


class CampaignStatsFactory(DjangoModelFactory):
    class Meta:
        model = CampaignStats

    campaign = factory.SubFactory(CampaignFactory)


class CampaignSeriesFactory(DjangoModelFactory):
    """A campaign's opens and clicks in one hour (this hour by default)."""

    class Meta:
        model = CampaignSeries

    campaign = factory.SubFactory(CampaignFactory)
    bucket = factory.LazyFunction(lambda: timezone.now().replace(minute=0, second=0, microsecond=0))


class SubscriberEngagementFactory(DjangoModelFactory):
    class Meta:
        model = SubscriberEngagement

    subscriber = factory.SubFactory(SubscriberFactory)


class SunsetPolicyFactory(DjangoModelFactory):
    class Meta:
        model = SunsetPolicy


class SandboxMessageFactory(DjangoModelFactory):
    """A message a test-mode campaign captured."""

    class Meta:
        model = SandboxMessage

    campaign = None
    to = factory.Sequence(lambda n: f"r{n:03d}@example.com")
    subject = factory.Sequence(lambda n: f"Issue {n:03d}")
    raw = "x"


# --- Leaving -----------------------------------------------------------------------------------


class ExitSurveyReasonFactory(DjangoModelFactory):
    class Meta:
        model = ExitSurveyReason
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"reason-{n}")
    label_en = factory.LazyAttribute(lambda reason: reason.key.replace("-", " ").capitalize())
    label_fr = factory.SelfAttribute("label_en")


class ExitSurveyResponseFactory(DjangoModelFactory):
    """An anonymous answer (``subscriber=``, ``campaign=`` when known)."""

    class Meta:
        model = ExitSurveyResponse

    subscriber = None
    campaign = None
    reasons = factory.LazyFunction(list)


# --- Signup ------------------------------------------------------------------------------------


class SignupFormFactory(DjangoModelFactory):
    """An active form: email and consent on one step; ``topics=[...]`` are offered."""

    class Meta:
        model = SignupForm
        skip_postgeneration_save = True

    name = "Newsletter"
    steps = factory.LazyFunction(
        lambda: [
            {
                "title": "",
                "fields": [
                    {"kind": "email", "required": True},
                    {"kind": "consent", "required": True},
                ],
            }
        ]
    )

    @factory.post_generation
    def topics(form, create, extracted, **kwargs):
        if create and extracted:
            form.topics.set(extracted)


class LeadMagnetFactory(DjangoModelFactory):
    class Meta:
        model = LeadMagnet

    name = "Guide"
    url = "https://cdn.example.com/guide.pdf"


class SignupFactory(DjangoModelFactory):
    """One person going through a form."""

    class Meta:
        model = Signup

    form = factory.SubFactory(SignupFormFactory)
    subscriber = factory.SubFactory(SubscriberFactory)


class FormViewFactory(DjangoModelFactory):
    class Meta:
        model = FormView

    form = factory.SubFactory(SignupFormFactory)
    day = factory.LazyFunction(date.today)
