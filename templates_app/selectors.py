"""Reads for the templates app."""

from django.db.models import QuerySet

from .models import SentReply, Template, TemplateVersion


def sent_replies_for_subscriber(subscriber_id: int) -> QuerySet[SentReply]:
    """Newest first; indexed on (subscriber, sent_at) for the subscriber timeline."""
    return (
        SentReply.objects.filter(subscriber_id=subscriber_id)
        .select_related("template", "sent_by")
        .order_by("-sent_at")
    )


def template_versions(template: Template) -> QuerySet[TemplateVersion]:
    return template.versions.select_related("created_by").order_by("-number")


def current_version(template: Template) -> TemplateVersion:
    return template.versions.get(number=template.current_version)
