"""The marketer's side: form list, builder, embed snippet, stats, lead magnets."""

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from core.roles import admin_required, editor_required, viewer_required
from subscribers.models import CustomField, Topic

from .forms import LeadMagnetForm, SignupFormForm
from .models import LeadMagnet, SignupForm
from .schema import KINDS, consent_notice, form_layout, texts, theme_for_display
from .selectors import form_stats, forms_with_counts


@viewer_required
def form_list(request):
    forms = forms_with_counts()
    return render(request, "signup/list.html", {"forms": forms})


def _builder_context(form: SignupFormForm, instance: SignupForm | None) -> dict:
    return {
        "form": form,
        "preview_url": reverse("signup:preview"),
        "instance": instance,
        "builder_data": {
            "kinds": list(KINDS),
            "custom_fields": [
                {"key": f.key, "label": f.label, "type": f.type} for f in CustomField.objects.all()
            ],
            "has_topics": Topic.objects.exists(),
        },
    }


@editor_required
@require_POST
@xframe_options_sameorigin
def form_preview(request):
    """The builder's live preview: what a visitor would see with the fields as they stand in
    the builder, every step one under the other. Nothing is saved; the buttons do nothing."""
    data = request.POST.copy()
    # A new form has no name yet: that need not hold the preview back.
    data["name"] = data.get("name", "").strip() or "New form"
    form = SignupFormForm(data)
    if not form.is_valid():
        return _framable_by_self(render(request, "signup/preview.html", {"problems": form.errors}))
    instance = form.save(commit=False)
    layout = form_layout(instance, topics=list(form.cleaned_data["topics"]))
    words = texts(instance.language)
    steps = [
        {
            "title": step["title"],
            "fields": step["fields"],
            "label": words["step"].format(n=n, total=len(layout)),
            "is_last": n == len(layout),
        }
        for n, step in enumerate(layout, start=1)
    ]
    context = {
        "form": instance,
        "steps": steps,
        "words": words,
        "theme": theme_for_display(instance.theme),
        "consent_notice": consent_notice(instance),
        "values": {},
    }
    return _framable_by_self(render(request, "signup/preview.html", context))


def _framable_by_self(response):
    """The builder frames its own preview: CSP frame-ancestors 'self' (as X-Frame-Options
    SAMEORIGIN); the rest of the policy stays as the CSP middleware writes it."""
    response._csp_replace = {"frame-ancestors": ["'self'"]}
    return response


@editor_required
def form_create(request):
    if request.method == "POST":
        form = SignupFormForm(request.POST)
        if form.is_valid():
            with transaction.atomic():
                instance = form.save()
            messages.success(request, f"Form “{instance.name}” created. Paste the snippet below.")
            return redirect("signup:detail", pk=instance.pk)
    else:
        form = SignupFormForm(
            initial={"consent_text": "I agree to receive emails and accept the privacy policy."}
        )
    return render(request, "signup/edit.html", _builder_context(form, None))


@editor_required
def form_edit(request, pk):
    instance = get_object_or_404(SignupForm, pk=pk)
    if request.method == "POST":
        form = SignupFormForm(request.POST, instance=instance)
        if form.is_valid():
            with transaction.atomic():
                form.save()
            messages.success(request, "Form saved.")
            return redirect("signup:detail", pk=instance.pk)
    else:
        form = SignupFormForm(instance=instance)
    return render(request, "signup/edit.html", _builder_context(form, instance))


def embed_script_url() -> str:
    """The script's unhashed static URL: snippets pasted on other sites must survive deploys
    (the manifest storage keeps the unhashed copy, and whitenoise serves it)."""
    if settings.STATIC_URL.startswith(("http://", "https://")):
        return f"{settings.STATIC_URL}signup/embed.js"
    return f"{settings.SITE_URL}/{settings.STATIC_URL.strip('/')}/signup/embed.js"


def embed_snippet(form: SignupForm) -> str:
    base = settings.SITE_URL
    script = embed_script_url()
    frame = f"{base}{reverse('signup:frame', args=[form.public_id])}"
    return (
        f'<script src="{script}" data-nofailmail-form="{form.public_id}" async></script>\n'
        f'<noscript><iframe src="{frame}" title="{escape(form.name)}" '
        'style="width:100%;max-width:34rem;height:520px;border:0"></iframe></noscript>'
    )


@viewer_required
def form_detail(request, pk):
    """Stats (funnel, conversion, sources) and the snippet to paste."""
    form = get_object_or_404(SignupForm.objects.select_related("lead_magnet"), pk=pk)
    stats = form_stats(form)
    chart = {
        "labels": [label for label, _ in stats["funnel"]],
        "values": [v for _, v in stats["funnel"]],
    }
    return render(
        request,
        "signup/detail.html",
        {
            "form": form,
            "stats": stats,
            "chart": chart,
            "snippet": embed_snippet(form),
            "hosted_url": settings.SITE_URL + reverse("signup:page", args=[form.public_id]),
            "iframe_url": settings.SITE_URL + reverse("signup:frame", args=[form.public_id]),
        },
    )


@admin_required
@require_POST
def form_delete(request, pk):
    form = get_object_or_404(SignupForm, pk=pk)
    name = form.name
    form.delete()
    messages.success(request, f"Form “{name}” deleted (its subscribers stay).")
    return redirect("signup:list")


@viewer_required
def lead_magnet_list(request):
    return _lead_magnets(request)


def _lead_magnets(request, *, form=None, editing=None):
    return render(
        request,
        "signup/lead_magnets.html",
        {
            "magnets": LeadMagnet.objects.all(),
            "upload_form": form or LeadMagnetForm(),
            "editing": editing,
            "max_mb": settings.SIGNUP_LEAD_MAGNET_MAX_MB,
        },
    )


@editor_required
@require_POST
def lead_magnet_create(request):
    form = LeadMagnetForm(request.POST, request.FILES)
    if form.is_valid():
        magnet = form.save()
        messages.success(request, f"Lead magnet “{magnet.name}” added.")
        return redirect("signup:lead_magnets")
    return _lead_magnets(request, form=form)


@admin_required
@require_POST
def lead_magnet_delete(request, pk):
    magnet = get_object_or_404(LeadMagnet, pk=pk)
    if magnet.file:
        magnet.file.delete(save=False)
    magnet.delete()
    messages.success(request, "Lead magnet deleted.")
    return redirect("signup:lead_magnets")
