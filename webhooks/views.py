"""The webhooks pages: endpoints (editors and admins manage them, viewers read), each
endpoint's delivery log, and "send again"."""

from django.contrib import messages
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from core.roles import editor_required, viewer_required

from . import services
from .forms import EndpointForm
from .models import WebhookAttempt, WebhookEndpoint, WebhookMessage

LOG_ROWS = 100


@viewer_required
def endpoint_list(request):
    endpoints = WebhookEndpoint.objects.annotate(
        pending=Count("messages", filter=Q(messages__status=WebhookMessage.Status.PENDING))
    )
    return render(request, "webhooks/list.html", {"endpoints": endpoints, "section": "webhooks"})


@editor_required
def endpoint_create(request):
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        endpoint = services.endpoint_save(endpoint=form.save(commit=False), user=request.user)
        messages.success(request, "Endpoint saved. Verify its signatures with the secret below.")
        return redirect("webhooks:detail", pk=endpoint.pk)
    return render(request, "webhooks/form.html", {"form": form, "endpoint": None})


@editor_required
def endpoint_edit(request, pk):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    form = EndpointForm(request.POST or None, instance=endpoint)
    if request.method == "POST" and form.is_valid():
        services.endpoint_save(endpoint=form.save(commit=False))
        messages.success(request, "Endpoint saved.")
        return redirect("webhooks:detail", pk=endpoint.pk)
    return render(request, "webhooks/form.html", {"form": form, "endpoint": endpoint})


@viewer_required
def endpoint_detail(request, pk):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    # The log: the latest tries, each with its message (one query with the join).
    attempts = (
        WebhookAttempt.objects.filter(endpoint=endpoint)
        .select_related("message")
        .order_by("-id")[:LOG_ROWS]
    )
    # Through the index of pending rows (given-up ones are in the log, with "send again").
    waiting = WebhookMessage.objects.filter(
        endpoint=endpoint, status=WebhookMessage.Status.PENDING
    ).order_by("next_attempt_at")[:LOG_ROWS]
    return render(
        request,
        "webhooks/detail.html",
        {"endpoint": endpoint, "attempts": attempts, "waiting": waiting, "section": "webhooks"},
    )


@editor_required
@require_POST
def endpoint_delete(request, pk):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    services.endpoint_delete(endpoint=endpoint)
    messages.success(request, "Endpoint deleted.")
    return redirect("webhooks:list")


@editor_required
@require_POST
def endpoint_rotate_secret(request, pk):
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    services.endpoint_rotate_secret(endpoint=endpoint)
    messages.success(request, "New secret made: messages from now on are signed with it.")
    return redirect("webhooks:detail", pk=endpoint.pk)


@editor_required
@require_POST
def message_resend(request, pk):
    message = get_object_or_404(WebhookMessage, pk=pk)
    services.webhook_message_resend(message=message)
    messages.success(request, f"{message.event_type} {message.msg_id} will be sent again now.")
    return redirect("webhooks:detail", pk=message.endpoint_id)
