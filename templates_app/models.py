from django.conf import settings
from django.db import models
from django.urls import reverse


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


class Image(models.Model):
    """An image of the library: checked, stripped of metadata, resized and re-encoded by Pillow
    on upload (see services.image_upload); emails reference it by absolute URL."""

    file = models.FileField(upload_to="email-images/%Y/%m/")
    original_name = models.CharField(max_length=255)
    alt_text = models.CharField(max_length=300)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    content_type = models.CharField(max_length=32)
    size = models.PositiveIntegerField(help_text="Bytes after re-encoding.")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.original_name

    @property
    def public_path(self) -> str:
        # Served by a public view: MEDIA_URL is only served in DEBUG.

        return reverse("templates_app:image_file", args=[(self.file.name or "").rsplit("/", 1)[-1]])

    @property
    def absolute_url(self) -> str:
        # Mail clients fetch images from anywhere: a relative URL would break in every inbox.
        return settings.SITE_URL + self.public_path


class SentReply(models.Model):
    """A canned reply sent to one person: shown on the subscriber's timeline."""

    subscriber = models.ForeignKey(
        "subscribers.Subscriber",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sent_replies",
    )
    to_email = models.CharField(max_length=254)
    template = models.ForeignKey(Template, null=True, on_delete=models.SET_NULL)
    version = models.ForeignKey(TemplateVersion, null=True, on_delete=models.SET_NULL)
    subject = models.CharField(max_length=255)
    text = models.TextField()
    html = models.TextField()
    fields = models.JSONField(default=dict, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    sent_at = models.DateTimeField(auto_now_add=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["-sent_at"]
        indexes = [models.Index(fields=["subscriber", "-sent_at"], name="sentreply_timeline")]

    def __str__(self):
        return f"{self.subject} → {self.to_email}"
