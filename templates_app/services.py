"""Writes for templates, images and canned replies."""

import io
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import make_msgid
from django.db import transaction
from django.db.models import ProtectedError, RestrictedError
from PIL import Image as PILImage
from PIL import ImageOps, ImageSequence, UnidentifiedImageError

from subscribers.models import Subscriber

from .fields import SAMPLE_CONTEXT, adhoc_fields, subscriber_context
from .lint import find_placeholders, lint_version
from .merge import MergeSyntaxError, parse
from .models import Image, Layout, SentReply, Template, TemplateVersion
from .rendering import RenderedMessage, compile_version, parse_layout

VERSIONED_FIELDS = ("subject", "preheader", "html_body", "text_body")


# --- Templates and versions ------------------------------------------------------------------


def template_validate(*, subject: str, preheader: str, html_body: str, text_body: str) -> None:
    """Malformed merge tags are refused at save (with where they are); lint findings are not:
    a draft may be unfinished, the linter blocks the send instead."""
    errors = {}
    for name, text in (
        ("subject", subject),
        ("preheader", preheader),
        ("html_body", html_body),
        ("text_body", text_body),
    ):
        try:
            parse(text)
        except MergeSyntaxError as exc:
            errors[name] = f"{exc.message} (line {exc.line}, column {exc.column})"
    if errors:
        raise ValidationError(errors)


def _snapshot(
    template: Template, *, user: User | None, layout_html: str | None = None
) -> TemplateVersion:
    template.current_version += 1
    template.save()
    return TemplateVersion.objects.create(
        template=template,
        number=template.current_version,
        subject=template.subject,
        preheader=template.preheader,
        html_body=template.html_body,
        text_body=template.text_body,
        layout_html=layout_html
        if layout_html is not None
        else (template.layout.html if template.layout is not None else ""),
        created_by=user if user is not None and user.is_authenticated else None,
    )


@transaction.atomic
def template_create(
    *,
    kind: str,
    name: str,
    subject: str,
    html_body: str,
    preheader: str = "",
    text_body: str = "",
    language: str = "en",
    layout: Layout | None = None,
    tags: list[str] | None = None,
    user: User | None = None,
) -> Template:
    template_validate(
        subject=subject, preheader=preheader, html_body=html_body, text_body=text_body
    )
    template = Template.objects.create(
        kind=kind,
        name=name,
        subject=subject,
        preheader=preheader,
        html_body=html_body,
        text_body=text_body,
        language=language,
        layout=layout,
        tags=tags or [],
    )
    _snapshot(template, user=user)
    return template


@transaction.atomic
def template_update(
    *, template: Template, user: User | None = None, **changes: Any
) -> TemplateVersion:
    """Save the template and keep a new version (even when only the layout changed: the
    version snapshots the layout HTML, so a campaign pinned to an old version is unaffected)."""
    allowed = {"name", "subject", "preheader", "html_body", "text_body", "language", "layout"}
    unknown = set(changes) - allowed - {"tags"}
    if unknown:
        raise TypeError(f"cannot change {sorted(unknown)}")
    # Lock the row: two editors saving at once must get two distinct version numbers.
    locked = Template.objects.select_for_update().get(pk=template.pk)
    for key, value in changes.items():
        setattr(locked, key, value)
    template_validate(
        subject=locked.subject,
        preheader=locked.preheader,
        html_body=locked.html_body,
        text_body=locked.text_body,
    )
    version = _snapshot(locked, user=user)
    template.refresh_from_db()
    return version


@transaction.atomic
def template_restore(
    *, template: Template, number: int, user: User | None = None
) -> TemplateVersion:
    """Bring an older version back as the newest one (history is never rewritten)."""
    old = TemplateVersion.objects.get(template=template, number=number)
    locked = Template.objects.select_for_update().get(pk=template.pk)
    for field in VERSIONED_FIELDS:
        setattr(locked, field, getattr(old, field))
    version = _snapshot(locked, user=user, layout_html=old.layout_html)
    template.refresh_from_db()
    return version


def template_duplicate(*, template: Template, user: User | None = None) -> Template:
    """Start a new template from an existing one (how a starter design is used)."""
    return template_create(
        kind=template.kind,
        name=f"{template.name} (copy)"[:150],
        subject=template.subject,
        preheader=template.preheader,
        html_body=template.html_body,
        text_body=template.text_body,
        language=template.language,
        layout=template.layout,
        tags=[t for t in template.tags if t != "starter"],
        user=user,
    )


class TemplateInUse(Exception):
    pass


def template_delete(*, template: Template) -> None:
    """Refused while a campaign (or anything else) still points at one of its versions."""
    try:
        with transaction.atomic():
            template.delete()
    except (ProtectedError, RestrictedError) as exc:
        raise TemplateInUse("This template is used by a campaign: it cannot be deleted.") from exc


def layout_validate(*, html: str) -> None:
    try:
        plan = parse_layout(html)
    except MergeSyntaxError as exc:
        raise ValidationError(
            {"html": f"{exc.message} (line {exc.line}, column {exc.column})"}
        ) from exc
    if not any(tag.path == "content" for tag in plan.tags):
        raise ValidationError({"html": "A layout needs {{ content }} where the body goes."})


# --- Images ----------------------------------------------------------------------------------

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# Decompression bombs: a tiny file that claims a huge canvas. Refused before decoding.
MAX_PIXELS = 40_000_000
EMAIL_MAX_WIDTH = 1200  # twice the 600 px column: sharp on high-density screens
ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": None}


class ImageRejected(ValueError):
    pass


def _open_checked(data: bytes) -> PILImage.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            probe = PILImage.open(io.BytesIO(data))
            if probe.format not in ACCEPTED_FORMATS:
                raise ImageRejected(
                    f"{probe.format} images are not accepted: use JPEG, PNG, GIF or WebP."
                )
            width, height = probe.size
            if width * height > MAX_PIXELS:
                raise ImageRejected(
                    f"The image is {width}x{height} pixels: too large to process safely."
                )
            probe.verify()  # structural check; the object is unusable afterwards
            image = PILImage.open(io.BytesIO(data))
            image.load()
    except ImageRejected:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as exc:
        raise ImageRejected("The image is too large to process safely.") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("This file is not an image Pillow can read.") from exc
    return image


def _reencode(image: PILImage.Image, source_format: str | None) -> tuple[bytes, str, str]:
    """Re-encode without metadata (EXIF with GPS, camera serials ... never leave the server)."""
    if source_format == "GIF" and getattr(image, "n_frames", 1) > 1:
        return _reencode_animation(image)
    image = ImageOps.exif_transpose(image)
    if image.width > EMAIL_MAX_WIDTH:
        height = round(image.height * EMAIL_MAX_WIDTH / image.width)
        image = image.resize((EMAIL_MAX_WIDTH, max(height, 1)), PILImage.Resampling.LANCZOS)
    out = io.BytesIO()
    has_alpha = image.mode in ("RGBA", "LA", "P") and (
        image.mode != "P" or "transparency" in image.info
    )
    if source_format == "GIF":
        image.convert("P", palette=PILImage.Palette.ADAPTIVE).save(out, "GIF", optimize=True)
        return out.getvalue(), "image/gif", "gif"
    if has_alpha:
        image.convert("RGBA").save(out, "PNG", optimize=True)
        return out.getvalue(), "image/png", "png"
    # Photos and opaque graphics: JPEG is what every mail client displays, and small.
    image.convert("RGB").save(out, "JPEG", quality=82, optimize=True, progressive=True)
    return out.getvalue(), "image/jpeg", "jpg"


MAX_ANIMATION_PIXELS = 200_000_000  # all frames together: a long animation is a bomb too


def _reencode_animation(image: PILImage.Image) -> tuple[bytes, str, str]:
    """Animated GIFs stay animated (a first frame alone would change the message)."""
    if getattr(image, "n_frames", 1) * image.width * image.height > MAX_ANIMATION_PIXELS:
        raise ImageRejected("The animation has too many frames to process safely.")
    size = image.size
    if image.width > EMAIL_MAX_WIDTH:
        size = (EMAIL_MAX_WIDTH, max(round(image.height * EMAIL_MAX_WIDTH / image.width), 1))
    frames, durations = [], []
    for frame in ImageSequence.Iterator(image):
        durations.append(frame.info.get("duration", 100))
        frames.append(frame.convert("RGBA").resize(size, PILImage.Resampling.LANCZOS))
    out = io.BytesIO()
    frames[0].save(
        out,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=image.info.get("loop", 0),
        disposal=2,
        optimize=True,
    )
    return out.getvalue(), "image/gif", "gif"


def image_upload(*, upload: File, alt_text: str, user: User | None = None) -> Image:
    """Check, strip, resize and re-encode an uploaded image; raise ImageRejected with a reason."""
    alt_text = (alt_text or "").strip()
    if not alt_text:
        raise ImageRejected("Describe the image in the alt text: many inboxes block images.")
    if upload.size > MAX_UPLOAD_BYTES:
        raise ImageRejected(f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
    data = upload.read()
    image = _open_checked(data)
    source_format = image.format
    content, content_type, extension = _reencode(image, source_format)
    with PILImage.open(io.BytesIO(content)) as final:
        width, height = final.size
    record = Image(
        original_name=(upload.name or "image")[:255],
        alt_text=alt_text[:300],
        width=width,
        height=height,
        content_type=content_type,
        size=len(content),
        uploaded_by=user if user is not None and user.is_authenticated else None,
    )
    record.file.save(f"{uuid.uuid4().hex}.{extension}", ContentFile(content), save=False)
    record.save()
    return record


def image_delete(*, image: Image) -> None:
    image.file.delete(save=False)
    image.delete()


# --- Canned replies --------------------------------------------------------------------------


class ReplyNotReady(ValueError):
    """The reply cannot be sent: unfilled fields or blocking lint findings."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def reply_fields(version: TemplateVersion) -> list[str]:
    """The ad-hoc fields the sender fills in, in order of appearance."""
    compiled = compile_version(version)
    return adhoc_fields(tag.path for plan in compiled.plans for tag in plan.tags)


def template_preview_render(
    version: TemplateVersion, subscriber: Subscriber | None = None
) -> RenderedMessage:
    """The message as ``subscriber`` would get it, or as the sample data fills it: the same merge
    values as the test send and the pipeline (``subscriber_context``) and the same compiled
    version; unsubscribe and preference links are samples. A canned reply shows where the
    sender's fields go rather than blanks. The dashboard's preview and the API's both call this;
    it raises MergeSyntaxError when the version does not compile."""
    if subscriber is not None:
        context = subscriber_context(
            subscriber,
            unsubscribe_url=SAMPLE_CONTEXT["unsubscribe_url"],
            preferences_url=SAMPLE_CONTEXT["preferences_url"],
            view_in_browser_url=SAMPLE_CONTEXT["view_in_browser_url"],
        )
    else:
        context = dict(SAMPLE_CONTEXT)
    if version.template.kind == Template.Kind.CANNED_REPLY:
        context.update({name: f"«{name}»" for name in reply_fields(version)})
    return compile_version(version).render(context)


def reply_prepare(
    *,
    version: TemplateVersion,
    to_email: str,
    subscriber: Subscriber | None = None,
    fields: Mapping[str, str],
) -> RenderedMessage:
    """Render the reply for preview or sending; raise ReplyNotReady listing what is missing."""
    problems = [
        f"{f.message} ({f.field}, line {f.line})" for f in lint_version(version) if f.blocking
    ]
    compiled = compile_version(version)
    filled = {key: (value or "").strip() for key, value in fields.items()}
    context = subscriber_context(subscriber, email=to_email, extra=filled)
    for name in reply_fields(version):
        if not filled.get(name):
            problems.append(f"Fill in “{name}”.")
    for tag in {t.path: t for plan in compiled.plans for t in plan.missing(context)}.values():
        if tag.path not in filled:
            problems.append(f"{{{{ {tag.path} }}}} is empty for {to_email} and has no default.")
    # What the sender typed must not reintroduce a placeholder either ("[topic]"). Only the
    # typed values: the template itself is linted above, and subscriber data is not ours.
    for name, value in filled.items():
        for placeholder, _, _ in find_placeholders(value):
            problems.append(f"Placeholder {placeholder!r} in “{name}”.")
    message = compiled.render(context)
    if problems:
        raise ReplyNotReady(list(dict.fromkeys(problems)))
    return message


def reply_send(
    *,
    version: TemplateVersion,
    to_email: str,
    fields: Mapping[str, str],
    subscriber: Subscriber | None = None,
    user: User | None = None,
) -> SentReply:
    """Send one canned reply through settings.EMAIL_BACKEND and record it for the timeline."""
    if version.template.kind != Template.Kind.CANNED_REPLY:
        raise ReplyNotReady(["Only canned replies can be sent this way."])
    message = reply_prepare(
        version=version, to_email=to_email, subscriber=subscriber, fields=fields
    )
    message_id = make_msgid(domain=settings.SITE_URL.split("://", 1)[-1].split(":")[0] or None)
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to_email],
        headers={"Message-ID": message_id},
    )
    email.attach_alternative(message.html, "text/html")
    email.send(fail_silently=False)
    return SentReply.objects.create(
        subscriber=subscriber,
        to_email=to_email,
        template=version.template,
        version=version,
        subject=message.subject,
        text=message.text,
        html=message.html,
        fields=dict(fields),
        message_id=message_id,
        sent_by=user if user is not None and user.is_authenticated else None,
    )
