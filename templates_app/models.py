from django.conf import settings
from django.db import models


class Layout(models.Model):
    """The responsive wrapper around a newsletter body: header, footer, postal address and
    the unsubscribe / preferences block. ``{{ content }}`` marks where the body goes."""

    name = models.CharField(max_length=100, unique=True)
    html = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.name


class Template(models.Model):
    class Kind(models.TextChoices):
        NEWSLETTER = "newsletter", "Newsletter"
        CANNED_REPLY = "canned_reply", "Canned reply"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.NEWSLETTER)
    name = models.CharField(max_length=150)
    language = models.CharField(max_length=8, default="en")
    subject = models.CharField(max_length=255)
    preheader = models.CharField(max_length=255, blank=True)
    html_body = models.TextField()
    text_body = models.TextField(blank=True, help_text="Generated from the HTML when empty.")
    layout = models.ForeignKey(Layout, null=True, blank=True, on_delete=models.PROTECT)
    tags = models.JSONField(default=list, blank=True)
    current_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self):
        return self.name


class TemplateVersion(models.Model):
    """An immutable snapshot taken at every save; a campaign pins the one it started with."""

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    subject = models.CharField(max_length=255)
    preheader = models.CharField(max_length=255, blank=True)
    html_body = models.TextField()
    text_body = models.TextField(blank=True)
    layout_html = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["template", "number"], name="template_version_unique")
        ]

    def __str__(self):
        return f"{self.template} v{self.number}"
