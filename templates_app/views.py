import smtplib
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.core.validators import validate_email
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_POST

from core.roles import admin_required, editor_required, viewer_required
from subscribers.models import Subscriber
from subscribers.selectors import subscribers_with_email

from . import forms, selectors, services
from .lint import lint_template
from .merge import MergeSyntaxError
from .models import Image, Layout, SentReply, Template

# The kind filter's tabs name what they list.
KIND_PLURALS = [
    (Template.Kind.NEWSLETTER.value, "Newsletters"),
    (Template.Kind.CANNED_REPLY.value, "Canned replies"),
]


@viewer_required
def template_list(request):
    kind = request.GET.get("kind")
    templates = Template.objects.select_related("layout").order_by("kind", "language", "name")
    if kind in Template.Kind.values:
        templates = templates.filter(kind=kind)
    return render(
        request,
        "templates_app/list.html",
        {"templates": templates, "kind": kind, "kinds": KIND_PLURALS},
    )


def _lint_for_form(kind: str, data, layout: Layout | None):
    return lint_template(
        kind=kind,
        subject=data.get("subject", ""),
        preheader=data.get("preheader", ""),
        html_body=data.get("html_body", ""),
        text_body=data.get("text_body", ""),
        layout_html=layout.html if layout else "",
    )


@editor_required
def template_create(request, kind):
    if kind not in Template.Kind.values:
        raise Http404
    form = forms.TemplateForm(request.POST or None, kind=kind)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        template = services.template_create(
            kind=kind,
            name=data["name"],
            language=data["language"],
            subject=data["subject"],
            preheader=data["preheader"],
            html_body=data["html_body"],
            text_body=data["text_body"],
            layout=data.get("layout"),
            tags=data["tags"],
            user=request.user,
        )
        messages.success(request, f"“{template.name}” saved as version 1.")
        return redirect("templates_app:edit", pk=template.pk)
    return render(
        request,
        "templates_app/edit.html",
        {"form": form, "kind": kind, "template": None, "findings": None},
    )


@viewer_required
def template_edit(request, pk):
    template = get_object_or_404(Template.objects.select_related("layout"), pk=pk)
    if request.method == "POST":
        return _template_save(request, template)
    form = forms.TemplateForm(instance=template, kind=template.kind)
    findings = _lint_for_form(template.kind, form.initial, template.layout)
    return render(
        request,
        "templates_app/edit.html",
        {"form": form, "kind": template.kind, "template": template, "findings": findings},
    )


@editor_required
def _template_save(request, template):
    form = forms.TemplateForm(request.POST, instance=template, kind=template.kind)
    if form.is_valid():
        data = form.cleaned_data
        changes = {
            key: data[key]
            for key in ("name", "language", "subject", "preheader", "html_body", "text_body")
        }
        if "layout" in form.fields:
            changes["layout"] = data.get("layout")
        changes["tags"] = data["tags"]
        template.refresh_from_db()
        version = services.template_update(template=template, user=request.user, **changes)
        messages.success(request, f"Saved as version {version.number}.")
        return redirect("templates_app:edit", pk=template.pk)
    template.refresh_from_db()
    return render(
        request,
        "templates_app/edit.html",
        {"form": form, "kind": template.kind, "template": template, "findings": None},
        status=400,
    )


@editor_required
@require_POST
def lint_preview(request):
    """Live lint for the editor (htmx): computes findings, changes nothing."""
    kind = request.POST.get("kind", Template.Kind.NEWSLETTER)
    layout = None
    layout_id = request.POST.get("layout")
    if kind == Template.Kind.NEWSLETTER and layout_id and layout_id.isdigit():
        layout = Layout.objects.filter(pk=layout_id).first()
    findings = _lint_for_form(kind, request.POST, layout)
    return render(request, "templates_app/_findings.html", {"findings": findings})


@editor_required
@require_POST
def template_duplicate(request, pk):
    template = get_object_or_404(Template, pk=pk)
    copy = services.template_duplicate(template=template, user=request.user)
    messages.success(request, f"“{copy.name}” created from “{template.name}”.")
    return redirect("templates_app:edit", pk=copy.pk)


@admin_required
@require_POST
def template_delete(request, pk):
    template = get_object_or_404(Template, pk=pk)
    try:
        services.template_delete(template=template)
    except services.TemplateInUse as exc:
        messages.error(request, str(exc))
        return redirect("templates_app:edit", pk=pk)
    messages.success(request, f"“{template.name}” deleted.")
    return redirect("templates_app:list")


@viewer_required
def version_list(request, pk):
    template = get_object_or_404(Template, pk=pk)
    return render(
        request,
        "templates_app/versions.html",
        {"template": template, "versions": selectors.template_versions(template)},
    )


@editor_required
@require_POST
def version_restore(request, pk, number):
    template = get_object_or_404(Template, pk=pk)
    version = get_object_or_404(template.versions, number=number)
    new = services.template_restore(template=template, number=version.number, user=request.user)
    messages.success(request, f"Version {number} restored as version {new.number}.")
    return redirect("templates_app:edit", pk=template.pk)


@viewer_required
@require_GET
def template_preview(request, pk):
    """Desktop and mobile previews for a subscriber or sample data, the text part, the source."""
    template = get_object_or_404(Template, pk=pk)
    number = request.GET.get("version") or str(template.current_version)
    if not number.isdecimal():
        raise Http404("No such version.")
    version = get_object_or_404(template.versions, number=int(number))
    email = (request.GET.get("email") or "").strip().lower()
    subscriber = subscribers_with_email(email).first() if email else None
    error = message = None
    try:
        message = services.template_preview_render(version, subscriber)
    except MergeSyntaxError as exc:
        error = str(exc)
    return render(
        request,
        "templates_app/preview.html",
        {
            "template": template,
            "version": version,
            "versions": selectors.template_versions(template),
            "message": message,
            "error": error,
            "email": email,
            "subscriber": subscriber,
            "subscriber_missing": bool(email) and subscriber is None,
        },
    )


# --- Images ----------------------------------------------------------------------------------


@viewer_required
def image_list(request):
    form = forms.ImageUploadForm()
    page = Paginator(Image.objects.all(), 48).get_page(request.GET.get("page"))
    return render(request, "templates_app/images.html", {"form": form, "page": page})


@editor_required
@require_POST
def image_upload(request):
    form = forms.ImageUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            image = services.image_upload(
                upload=form.cleaned_data["file"],
                alt_text=form.cleaned_data["alt_text"],
                user=request.user,
            )
        except services.ImageRejected as exc:
            form.add_error("file", str(exc))
        else:
            messages.success(
                request, f"{image.original_name} added ({image.width}x{image.height} px)."
            )
            return redirect("templates_app:images")
    page = Paginator(Image.objects.all(), 48).get_page(1)
    return render(request, "templates_app/images.html", {"form": form, "page": page}, status=400)


@editor_required
@require_POST
def image_delete(request, pk):
    image = get_object_or_404(Image, pk=pk)
    services.image_delete(image=image)
    messages.success(request, "Image deleted.")
    return redirect("templates_app:images")


@require_GET
@cache_control(public=True, max_age=31536000, immutable=True)
def image_file(request, name):
    """Public: mail clients fetch images without a session. Names are random (uuid4)."""
    image = Image.objects.filter(file__endswith="/" + name).first()
    if image is None or "/" in name:
        raise Http404
    response = FileResponse(image.file.open("rb"), content_type=image.content_type)
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- Canned replies --------------------------------------------------------------------------


@editor_required
def reply_start(request):
    bound = "to_email" in request.GET
    initial = {"template": request.GET.get("template")}
    subscriber_id = request.GET.get("subscriber", "")
    if subscriber_id.isdigit():
        # Coming from a subscriber's page: their address is filled in.
        initial["to_email"] = (
            Subscriber.objects.filter(pk=subscriber_id).values_list("email", flat=True).first()
        )
    form = forms.ReplyStartForm(request.GET if bound else None, initial=initial)
    if bound and form.is_valid():
        query = urlencode({"to": form.cleaned_data["to_email"]})
        return redirect(f"{_reply_url(form.cleaned_data['template'].pk)}?{query}")
    return render(request, "templates_app/reply_start.html", {"form": form})


def _reply_url(pk: int) -> str:
    return reverse("templates_app:reply_compose", args=[pk])


@editor_required
def reply_compose(request, pk):
    """Fill the reply's fields, preview, send. Sending is refused while anything is unfilled."""
    template = get_object_or_404(Template, pk=pk, kind=Template.Kind.CANNED_REPLY)
    version = selectors.current_version(template)
    to_email = (request.POST.get("to") or request.GET.get("to") or "").strip()
    subscriber = subscribers_with_email(to_email).first() if to_email else None
    names = services.reply_fields(version)
    data = request.POST if request.method == "POST" else None
    fields_form = forms.reply_fields_form(names, data)
    problems: list[str] = []
    preview = None
    if request.method == "POST":
        values = {name: request.POST.get(name, "") for name in names}
        try:
            _check_address(to_email)
            if request.POST.get("action") == "send":
                sent = services.reply_send(
                    version=version,
                    to_email=to_email,
                    subscriber=subscriber,
                    fields=values,
                    user=request.user,
                )
                messages.success(request, f"Reply sent to {sent.to_email}.")
                return redirect("templates_app:sent_replies")
            preview = services.reply_prepare(
                version=version, to_email=to_email, subscriber=subscriber, fields=values
            )
        except services.ReplyNotReady as exc:
            problems = exc.problems
        except (smtplib.SMTPException, OSError) as exc:
            # Nothing was recorded; the form keeps what the sender typed.
            problems = [f"The mail server did not accept the message ({exc}). Try again later."]
        except ValidationError as exc:
            problems = exc.messages
    return render(
        request,
        "templates_app/reply_compose.html",
        {
            "template": template,
            "version": version,
            "to_email": to_email,
            "subscriber": subscriber,
            "fields_form": fields_form,
            "problems": problems,
            "preview": preview,
        },
        status=400 if problems else 200,
    )


def _check_address(address: str) -> None:
    validate_email(address)


@viewer_required
def sent_replies(request):
    replies = SentReply.objects.select_related("subscriber", "template", "sent_by")
    subscriber_id = request.GET.get("subscriber")
    if subscriber_id and subscriber_id.isdigit():
        replies = selectors.sent_replies_for_subscriber(int(subscriber_id))
    page = Paginator(replies, 50).get_page(request.GET.get("page"))
    return render(request, "templates_app/sent_replies.html", {"page": page})
