from django.contrib import messages
from django.db import transaction
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from analytics.tracking import untracked_html
from core.roles import Role, admin_required, editor_required, has_role, viewer_required
from subscribers.models import Segment

from . import services
from .forms import CampaignForm, ConnectionForm, ScheduleForm, TestSendForm
from .models import Campaign, CampaignTransitionError, Delivery, SandboxMessage, SendingConnection
from .preflight import BLOCKING, run_preflight
from .selectors import audience_count, audience_for, campaign_progress, delivery_page
from .throttle import warmup_days_needed


def _campaign(request, pk) -> Campaign:
    return get_object_or_404(
        Campaign.objects.select_related("template", "connection", "segment"), pk=pk
    )


@viewer_required
def campaign_list(request):
    campaigns = list(Campaign.objects.select_related("template", "connection")[:200])
    # One grouped query over the ledger for every listed campaign (no query per row).
    started = [c.pk for c in campaigns if c.started_at]
    counts: dict[int, dict[str, int]] = {}
    for campaign_id, status, n in (
        Delivery.objects.filter(campaign_id__in=started)
        .order_by()
        .values_list("campaign_id", "status")
        .annotate(n=Count("id"))
    ):
        counts.setdefault(campaign_id, {})[status] = n
    for campaign in campaigns:
        if campaign.pk in counts:
            by_status = counts[campaign.pk]
            total = sum(by_status.values())
            done = sum(by_status.get(s, 0) for s in ("sent", "failed", "skipped"))
            campaign.progress = {
                "sent": by_status.get("sent", 0),
                "total": total,
                "percent": int(100 * done / total) if total else 0,
            }
    return render(request, "campaigns/list.html", {"campaigns": campaigns})


@editor_required
def campaign_create(request):
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        campaign = form.save(commit=False)
        campaign.created_by = request.user
        campaign.save()
        form.save_m2m()
        messages.success(request, "Draft saved. Review it, run the pre-flight, then schedule.")
        return redirect("campaigns:detail", pk=campaign.pk)
    return render(request, "campaigns/form.html", {"form": form, "campaign": None})


@editor_required
def campaign_edit(request, pk):
    campaign = _campaign(request, pk)
    if campaign.status != Campaign.Status.DRAFT:
        messages.error(request, "Only drafts can be edited: duplicate this campaign instead.")
        return redirect("campaigns:detail", pk=pk)
    form = CampaignForm(request.POST or None, instance=campaign)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Saved.")
        return redirect("campaigns:detail", pk=pk)
    return render(request, "campaigns/form.html", {"form": form, "campaign": campaign})


@require_GET
@editor_required
def audience_preview(request):
    """Live audience count for the wizard (htmx): the real audience query, not an estimate."""
    topic_ids = [int(t) for t in request.GET.getlist("topics") if t.isdigit()]
    segment_id = request.GET.get("segment", "")
    segment = Segment.objects.filter(pk=segment_id).first() if segment_id.isdigit() else None
    count = audience_for(topic_ids=topic_ids, segment=segment).count()
    return HttpResponse(f"{count:,} recipient(s)")


@viewer_required
def campaign_detail(request, pk):
    campaign = _campaign(request, pk)
    progress = campaign_progress(campaign) if campaign.started_at else None
    estimate_days = None
    if (
        campaign.connection
        and campaign.connection.warmup_plan
        and campaign.status in (Campaign.Status.DRAFT, Campaign.Status.SCHEDULED)
    ):
        estimate_days = warmup_days_needed(campaign.connection, audience_count(campaign))
    return render(
        request,
        "campaigns/detail.html",
        {
            "campaign": campaign,
            "progress": progress,
            "audience": audience_count(campaign) if campaign.status == "draft" else None,
            "schedule_form": ScheduleForm(
                initial={
                    "kind": campaign.schedule_kind,
                    "timezone": campaign.schedule_timezone,
                    "weekday": campaign.recurring_weekday,
                    "hour": campaign.recurring_hour,
                    "send_at_local": campaign.send_at_local,
                    "only_new_since_last": campaign.only_new_since_last,
                }
            ),
            "test_form": TestSendForm(initial={"addresses": campaign.seed_addresses}),
            "estimate_days": estimate_days,
            "occurrences": campaign.occurrences.all()[:20],
        },
    )


@viewer_required
def campaign_progress_partial(request, pk):
    campaign = _campaign(request, pk)
    return render(
        request,
        "campaigns/_progress.html",
        {"campaign": campaign, "progress": campaign_progress(campaign)},
    )


@viewer_required
def campaign_preflight(request, pk):
    campaign = _campaign(request, pk)
    findings = run_preflight(campaign, check_links=True)
    return render(
        request,
        "campaigns/preflight.html",
        {
            "campaign": campaign,
            "findings": findings,
            "blocking": [f for f in findings if f.severity == BLOCKING],
            "schedule_form": ScheduleForm(
                initial={"kind": campaign.schedule_kind, "timezone": campaign.schedule_timezone}
            ),
        },
    )


def _act(request, campaign, action, success):
    try:
        with transaction.atomic():
            action()
    except CampaignTransitionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, success)
    return redirect("campaigns:detail", pk=campaign.pk)


@require_POST
@editor_required
def campaign_schedule(request, pk):
    campaign = _campaign(request, pk)
    form = ScheduleForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
        return redirect("campaigns:detail", pk=pk)
    data = form.cleaned_data
    override = data["override"]
    if override and not has_role(request.user, Role.ADMIN):
        messages.error(request, "Only an admin can override blocking findings.")
        return redirect("campaigns:preflight", pk=pk)
    campaign.schedule_kind = data["kind"]
    campaign.schedule_timezone = data["timezone"]
    campaign.send_at_local = data["send_at_local"]
    campaign.recurring_weekday = data["weekday"]
    campaign.recurring_hour = data["hour"]
    campaign.only_new_since_last = data["only_new_since_last"]
    campaign.local_send_hour = data["local_send_hour"]

    def schedule():
        campaign.save()
        services.campaign_schedule(
            campaign=campaign, user=request.user, override=override, check_links=True
        )
        if campaign.schedule_kind == Campaign.ScheduleKind.NOW:
            from .tasks import campaigns_dispatch

            transaction.on_commit(campaigns_dispatch.delay)

    return _act(request, campaign, schedule, "Scheduled.")


@require_POST
@editor_required
def campaign_unschedule(request, pk):
    campaign = _campaign(request, pk)
    return _act(
        request, campaign, lambda: services.campaign_unschedule(campaign=campaign), "Back to draft."
    )


@require_POST
@editor_required
def campaign_pause(request, pk):
    campaign = _campaign(request, pk)
    return _act(request, campaign, lambda: services.campaign_pause(campaign=campaign), "Paused.")


@require_POST
@editor_required
def campaign_resume(request, pk):
    campaign = _campaign(request, pk)
    return _act(request, campaign, lambda: services.campaign_resume(campaign=campaign), "Resumed.")


@require_POST
@editor_required
def campaign_cancel(request, pk):
    campaign = _campaign(request, pk)
    return _act(
        request,
        campaign,
        lambda: services.campaign_cancel(campaign=campaign),
        "Cancelled: nothing more will be sent.",
    )


@require_POST
@editor_required
def campaign_duplicate(request, pk):
    campaign = _campaign(request, pk)
    copy = services.campaign_duplicate(campaign=campaign, user=request.user)
    messages.success(request, "Duplicated as a new draft.")
    return redirect("campaigns:detail", pk=copy.pk)


@require_POST
@editor_required
def campaign_resolve_unknown(request, pk):
    campaign = _campaign(request, pk)
    resend = request.POST.get("decision") == "resend"
    count = services.delivery_resolve_unknown(campaign=campaign, resend=resend)
    messages.success(request, f"{count} deliveries {'queued again' if resend else 'accepted'}.")
    return redirect("campaigns:detail", pk=pk)


@require_POST
@editor_required
def campaign_test_send(request, pk):
    from .pipeline import test_send

    campaign = _campaign(request, pk)
    form = TestSendForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors["addresses"]))
        return redirect("campaigns:detail", pk=pk)
    addresses = form.cleaned_data["addresses"]
    Campaign.objects.filter(pk=pk).update(seed_addresses="\n".join(addresses))
    try:
        test_send(campaign=campaign, addresses=addresses)
    except Exception as exc:
        messages.error(request, f"The test send failed: {exc}")
    else:
        where = (
            "captured in the sandbox inbox"
            if campaign.is_test
            else ("sent to the seed list and copied to the sandbox inbox")
        )
        messages.success(request, f"{len(addresses)} test message(s) {where}.")
    return redirect("campaigns:detail", pk=pk)


@viewer_required
def campaign_deliveries(request, pk):
    campaign = _campaign(request, pk)
    status = request.GET.get("status") or None
    if status and status not in Delivery.Status.values:
        status = None
    after = request.GET.get("after", "0")
    rows = delivery_page(campaign, status=status, after_id=int(after) if after.isdigit() else 0)
    return render(
        request,
        "campaigns/deliveries.html",
        {
            "campaign": campaign,
            "rows": rows,
            "status": status,
            "statuses": Delivery.Status.choices,
            "next_after": rows[-1].pk if len(rows) == 100 else None,
        },
    )


@viewer_required
def sandbox_inbox(request):
    campaign_id = request.GET.get("campaign")
    qs = SandboxMessage.objects.select_related("campaign").defer("raw", "html", "text")
    if campaign_id and campaign_id.isdigit():
        qs = qs.filter(campaign_id=campaign_id)
    return render(request, "campaigns/sandbox.html", {"messages_list": qs[:200]})


@viewer_required
def sandbox_message(request, pk):
    message = get_object_or_404(SandboxMessage, pk=pk)
    # Viewing a captured message must record nothing: its pixel and tracked links would count
    # as the recipient's open and click (and a machine's, on their timeline).
    return render(
        request,
        "campaigns/sandbox_message.html",
        {"message": message, "html": untracked_html(message.html)},
    )


@admin_required
def connection_list(request):
    return render(
        request,
        "campaigns/connections.html",
        {"connections": SendingConnection.objects.order_by("name")},
    )


@admin_required
def connection_edit(request, pk=None):
    instance = get_object_or_404(SendingConnection, pk=pk) if pk else None
    form = ConnectionForm(request.POST or None, instance=instance)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Connection saved.")
        return redirect("campaigns:connections")
    return render(request, "campaigns/connection_form.html", {"form": form})
