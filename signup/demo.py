# ruff: noqa: RUF001 - French typography uses the typographic apostrophe on purpose
"""Demo signup form: two steps, a lead magnet, confirmation and welcome emails in English and
French, and two weeks of views and signups so the stats page has a funnel to show."""

import datetime as dt
import random

from django.core.files.base import ContentFile
from django.db import connection
from django.utils import timezone

from subscribers.models import CustomField, Subscriber, Topic
from templates_app.models import Template
from templates_app.services import template_create

from .models import FormView, LeadMagnet, Signup, SignupForm

FORM_NAME = "Newsletter (blog footer)"
# A minimal valid one-page PDF, so the download is a real file.
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 144]/Contents 4 0 R"
    b"/Resources<</Font<</F1 5 0 R>>>>>>endobj\n"
    b"4 0 obj<</Length 56>>stream\nBT /F1 18 Tf 20 70 Td (The email checklist) Tj ET\n"
    b"endstream endobj\n5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
EMAILS = [
    (
        "Signup confirmation",
        "en",
        "Please confirm your subscription",
        '<p>Hello {{ first_name|default:"there" }},</p><p>One click and you are in:</p>'
        '<p><a href="{{ confirm_url }}">Confirm my subscription</a></p>'
        "<p>Did not sign up? Ignore this email and you will not hear from us.</p>",
    ),
    (
        "Confirmation d’inscription",
        "fr",
        "Confirmez votre inscription",
        '<p>Bonjour {{ first_name|default:"" }},</p><p>Un clic et c’est fait :</p>'
        '<p><a href="{{ confirm_url }}">Je confirme mon inscription</a></p>'
        "<p>Vous ne vous êtes pas inscrit ? Ignorez ce message.</p>",
    ),
    (
        "Signup welcome",
        "en",
        "Welcome! Here is your checklist",
        '<p>Hello {{ first_name|default:"there" }}, welcome aboard.</p>'
        '<p><a href="{{ download_url }}">Download the email checklist</a> (link valid 3 days).</p>',
    ),
    (
        "Bienvenue (inscription)",
        "fr",
        "Bienvenue ! Voici votre check-list",
        '<p>Bonjour {{ first_name|default:"" }}, bienvenue.</p>'
        '<p><a href="{{ download_url }}">Télécharger la check-list</a> (lien valable 3 jours).</p>',
    ),
]


def load(*, stdout) -> None:
    if SignupForm.objects.filter(name=FORM_NAME).exists():
        stdout.write("Demo signup form already present.")
        return
    topics = list(Topic.objects.filter(slug__in=["weekly", "product"]))
    CustomField.objects.get_or_create(key="company", defaults={"label": "Company"})
    magnet = LeadMagnet(name="The email checklist", link_hours=72)
    magnet.file.save("email-checklist.pdf", ContentFile(PDF), save=True)
    templates = {}
    for name, language, subject, body in EMAILS:
        template = Template.objects.filter(name=name).first() or template_create(
            kind=Template.Kind.CANNED_REPLY,
            name=name,
            language=language,
            subject=subject,
            html_body=body,
            tags=["signup"],
        )
        templates[name] = template
    form = SignupForm.objects.create(
        name=FORM_NAME,
        steps=[
            {
                "title": "",
                "fields": [
                    {"kind": "email", "required": True, "placeholder": "you@example.com"},
                    {"kind": "consent", "required": True},
                    {"kind": "hidden", "key": "utm_source", "param": "utm_source"},
                    {"kind": "hidden", "key": "utm_campaign", "param": "utm_campaign"},
                ],
            },
            {
                "title": "Tell us a bit more (optional)",
                "fields": [
                    {"kind": "first_name", "help_text": "So we can greet you properly."},
                    {"kind": "attribute", "key": "company"},
                    {"kind": "topics"},
                ],
            },
        ],
        theme={"primary_color": "#5b3cc4", "button_text": "Get the checklist", "border_radius": 10},
        consent_text="I agree to receive the newsletter and accept the privacy policy.",
        consent_version="2026-01",
        allowed_origins="*",
        lead_magnet=magnet,
    )
    form.topics.set(topics)
    form.confirmation_templates.set(
        [templates["Signup confirmation"], templates["Confirmation d’inscription"]]
    )
    form.welcome_templates.set([templates["Signup welcome"], templates["Bienvenue (inscription)"]])
    _history(form)
    stdout.write(f"Demo signup form: {form.name} (hosted page /forms/f/{form.public_id}/).")


def _history(form: SignupForm) -> None:
    """Two weeks of views and signups from a few pages and campaigns (demo subscribers)."""
    rng = random.Random(8)
    today = timezone.localdate()
    sources = [
        ("https://blog.example.com/", "", ""),
        ("https://blog.example.com/deliverability-guide", "twitter", "autumn"),
        ("https://www.example.com/pricing", "newsletter", "launch"),
    ]
    views = []
    for days_ago in range(14):
        for page, utm_source, utm_campaign in sources:
            views.append(
                FormView(
                    form=form,
                    day=today - dt.timedelta(days=days_ago),
                    source_page=page,
                    utm_source=utm_source,
                    utm_campaign=utm_campaign,
                    count=rng.randint(20, 60),
                )
            )
    FormView.objects.bulk_create(views)
    people = list(
        Subscriber.objects.filter(source=Subscriber.Source.FORM).order_by("id")[:80]
    ) or list(Subscriber.objects.order_by("id")[:80])
    now = timezone.now()
    signups = []
    for person in people:
        page, utm_source, utm_campaign = rng.choice(sources)
        confirmed = person.status == Subscriber.Status.ACTIVE and rng.random() < 0.8
        sent = now - dt.timedelta(days=rng.randint(0, 13))
        signups.append(
            Signup(
                form=form,
                subscriber=person,
                steps_completed=2 if rng.random() < 0.6 else 1,
                consent_text=form.consent_text,
                consent_version=form.consent_version,
                source_page=page,
                utm_source=utm_source,
                utm_campaign=utm_campaign,
                confirmation_sent_at=sent,
                # Demo people already had their reminder: beat must not mail them on day one.
                reminder_sent_at=None if confirmed else sent + dt.timedelta(hours=48),
                confirmed_at=now if confirmed else None,
                downloaded_at=now if confirmed and rng.random() < 0.5 else None,
            )
        )
    Signup.objects.bulk_create(signups)
    # Spread the signups over the same two weeks as the views.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE signup_signup SET created_at = confirmation_sent_at WHERE form_id = %s",
            [form.pk],
        )
