"""Demo campaigns: a draft to explore the wizard and pre-flight, and a finished campaign with a
full ledger so the progress, delivery list and reports have something to show. Idempotent."""

from datetime import timedelta

from django.db import connection as db
from django.utils import timezone

from subscribers.models import Topic
from templates_app.models import Template, TemplateVersion

from .models import Campaign, SendingConnection
from .services import _snapshot, campaign_pin_content, campaign_transition

FINISHED_NAME = "October newsletter"
DRAFT_NAME = "November newsletter"
HTML = """<html><body>
<h1>Hello {{ first_name|default:"there" }},</h1>
<p>Here is what happened at {{ attr.company|default:"your company" }}'s favourite tool
this month.</p>
<p><a href="https://example.com/blog/october">Read the October update</a></p>
<p><a href="https://example.com/pricing">See the new plans</a></p>
</body></html>"""


def _template() -> Template:
    # A starter with real links, so the demo's click reports have something to show.
    template = (
        Template.objects.filter(
            kind=Template.Kind.NEWSLETTER, versions__isnull=False, html_body__contains="https://"
        )
        .order_by("pk")
        .first()
    )
    if template:
        return template
    template = Template.objects.create(
        name="Monthly newsletter (demo)",
        subject='News for {{ first_name|default:"you" }}',
        html_body=HTML,
        current_version=1,
    )
    TemplateVersion.objects.create(
        template=template, number=1, subject=template.subject, html_body=HTML
    )
    return template


def _fill_ledger_sql(finished: Campaign, started) -> None:
    with db.cursor() as cursor:
        # A realistic ledger: almost everyone sent, a few hard failures, a few skipped.
        cursor.execute(
            """
            UPDATE campaigns_delivery SET
              status = CASE WHEN id %% 97 = 0 THEN 'failed'
                            WHEN id %% 89 = 0 THEN 'skipped' ELSE 'sent' END,
              sent_at = CASE WHEN id %% 97 = 0 OR id %% 89 = 0 THEN NULL
                             ELSE %s + (id %% 600) * interval '1 second' END,
              message_id = CASE WHEN id %% 97 = 0 OR id %% 89 = 0 THEN ''
                                ELSE '<d' || id || '.c' || campaign_id || '@example.com>' END,
              error = CASE WHEN id %% 97 = 0 THEN 'SMTP 550 5.1.1 No such user'
                           WHEN id %% 89 = 0 THEN 'Address suppressed at sending time.'
                           ELSE '' END,
              attempts = 1
            WHERE campaign_id = %s
            """,
            [started, finished.pk],
        )


def load(*, stdout) -> None:
    if Campaign.objects.filter(name=FINISHED_NAME).exists():
        stdout.write("Demo campaigns already present.")
        return
    topic = Topic.objects.order_by("pk").first()
    if topic is None:
        topic = Topic.objects.create(name="Newsletter", slug="newsletter")
    sandbox, _ = SendingConnection.objects.get_or_create(
        name="Sandbox (test mode)",
        defaults={
            "test_mode": True,
            "sending_domain": "example.com",
            "rate_per_second": 50,
            "domain_caps": {"gmail.com": 600},
        },
    )
    template = _template()
    common = {
        "template": template,
        "from_name": "NoFailMail Demo",
        "connection": sandbox,
        "from_email": "news@example.com",
        "tags": ["newsletter"],
    }
    draft = Campaign.objects.create(name=DRAFT_NAME, **common)
    draft.topics.add(topic)

    finished = Campaign.objects.create(name=FINISHED_NAME, **common)
    finished.topics.add(topic)
    campaign_pin_content(campaign=finished)
    total = _snapshot(finished)
    started = timezone.now() - timedelta(days=20)
    Campaign.objects.filter(pk=finished.pk).update(total=total, started_at=started)
    campaign_transition(campaign=finished, to=Campaign.Status.RUNNING)
    _fill_ledger_sql(finished, started)
    campaign_transition(campaign=finished, to=Campaign.Status.FINISHED)
    Campaign.objects.filter(pk=finished.pk).update(finished_at=started + timedelta(minutes=10))
    stdout.write(f"Demo campaigns: “{DRAFT_NAME}” (draft), “{FINISHED_NAME}” ({total} deliveries).")
