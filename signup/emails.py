# ruff: noqa: RUF001 - French typography uses the typographic apostrophe on purpose
"""The confirmation, reminder and welcome emails of a signup, in the subscriber's language.

The form names one template per language for each kind (templates_app, usually canned replies so
that ``{{ confirm_url }}`` / ``{{ download_url }}`` pass the linter); when none is set the
built-in text below goes through the same compile pipeline.
"""

from collections.abc import Iterable

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from core.recipient_links import preferences_url, unsubscribe_url
from core.tokens import make_token
from templates_app.fields import subscriber_context
from templates_app.models import Template
from templates_app.rendering import compile_email, compile_version
from templates_app.selectors import current_version

from .models import Signup

CONFIRM_TOKEN = "signup.confirm"  # noqa: S105 - a signing salt, not a secret
DOWNLOAD_TOKEN = "signup.download"  # noqa: S105

BUILTIN = {
    "confirmation": {
        "en": (
            "Please confirm your subscription",
            '<p>Hello {{ first_name|default:"there" }},</p>'
            "<p>Please confirm that you want to receive emails from {{ company_name }}:</p>"
            '<p><a href="{{ confirm_url }}">Confirm my subscription</a></p>'
            "<p>If you did not ask for this, ignore this message: you will not hear from us.</p>",
        ),
        "fr": (
            "Confirmez votre inscription",
            '<p>Bonjour {{ first_name|default:"" }},</p>'
            "<p>Merci de confirmer que vous souhaitez recevoir les e-mails de "
            "{{ company_name }} :</p>"
            '<p><a href="{{ confirm_url }}">Je confirme mon inscription</a></p>'
            "<p>Si vous n’êtes pas à l’origine de cette demande, ignorez ce message.</p>",
        ),
    },
    "welcome": {
        "en": (
            "Welcome!",
            '<p>Hello {{ first_name|default:"there" }},</p>'
            "<p>Your subscription is confirmed. Welcome!</p>",
        ),
        "fr": (
            "Bienvenue !",
            '<p>Bonjour {{ first_name|default:"" }},</p>'
            "<p>Votre inscription est confirmée. Bienvenue !</p>",
        ),
    },
}
REMINDER_PREFIX = {"en": "Reminder: ", "fr": "Rappel : "}
# Appended to the built-in welcome email when the form has a lead magnet.
DOWNLOAD_PARAGRAPH = '<p><a href="{{ download_url }}">{{ download_label }}</a></p>'
DOWNLOAD_LABEL = {"en": "Download {name}", "fr": "Télécharger {name}"}


def confirm_url(signup: Signup) -> str:
    token = make_token(CONFIRM_TOKEN, {"s": signup.pk})
    return settings.SITE_URL + reverse("signup:confirm", args=[token])


def download_url(signup: Signup) -> str:
    """An expiring link (the lead magnet's link_hours) to the form's lead magnet, or ""."""
    magnet = signup.form.lead_magnet
    if magnet is None:
        return ""
    token = make_token(DOWNLOAD_TOKEN, {"s": signup.pk, "m": magnet.pk})
    return settings.SITE_URL + reverse("signup:download", args=[token])


def _pick_template(templates: Iterable[Template], languages: list[str]) -> Template | None:
    by_language: dict[str, Template] = {}
    for template in templates:
        by_language.setdefault(template.language, template)
    for language in languages:
        if language in by_language:
            return by_language[language]
    return next(iter(by_language.values()), None)


def _language(signup: Signup) -> str:
    language = signup.subscriber.language or signup.form.language
    return language if language in ("en", "fr") else signup.form.language


def build_message(signup: Signup, kind: str, *, reminder: bool = False) -> EmailMultiAlternatives:
    """The email for one signup: kind is "confirmation" or "welcome"."""
    subscriber = signup.subscriber
    language = _language(signup)
    related = (
        signup.form.confirmation_templates
        if kind == "confirmation"
        else signup.form.welcome_templates
    )
    template = _pick_template(
        related.all(), [subscriber.language, signup.form.language, settings.LANGUAGE_CODE]
    )
    link = download_url(signup) if kind == "welcome" else ""
    if template is not None:
        compiled = compile_version(current_version(template))
    else:
        subject, body = BUILTIN[kind][language]
        if link:
            body += DOWNLOAD_PARAGRAPH
        compiled = compile_email(subject=subject, preheader="", html_body=body)
    magnet = signup.form.lead_magnet
    extra = {
        "confirm_url": confirm_url(signup) if kind == "confirmation" else "",
        "download_url": link,
        "download_label": (
            DOWNLOAD_LABEL[language].format(name=magnet.name) if link and magnet is not None else ""
        ),
        "form_name": signup.form.name,
    }
    context = subscriber_context(
        subscriber,
        unsubscribe_url=unsubscribe_url(subscriber_id=subscriber.pk),
        preferences_url=preferences_url(subscriber_id=subscriber.pk),
        extra=extra,
    )
    rendered = compiled.render(context)
    subject = rendered.subject
    if reminder:
        subject = REMINDER_PREFIX[language] + subject
    message = EmailMultiAlternatives(
        subject=subject,
        body=rendered.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[subscriber.email],
        headers={"Auto-Submitted": "auto-generated"} if kind == "confirmation" else {},
    )
    message.attach_alternative(rendered.html, "text/html")
    return message
