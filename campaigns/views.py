from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.views.decorators.http import require_GET, require_POST

from analytics.guardrail import alert_acknowledge, campaign_alerts, holding_alerts
from analytics.tracking import untracked_html
from core.roles import Role, admin_required, editor_required, has_role, viewer_required
from subscribers.models import Segment

from . import services
from .forms import AlertAcknowledgeForm, CampaignForm, ConnectionForm, ScheduleForm, TestSendForm
from .models import Campaign, CampaignTransitionError, Delivery, SandboxMessage, SendingConnection
from .preflight import BLOCKING, run_preflight
from .scheduling import describe_instant, schedule_summary
from .seed_send import campaign_test_send as test_send_to_seeds
from .selectors import (
    audience_count,
    audience_for,
    campaign_progress,
    campaigns_listed,
    delivery_page,
)
from .tasks import campaigns_dispatch
from .throttle import warmup_days_needed


def _campaign(request, pk) -> Campaign:
    return get_object_or_404(
        Campaign.objects.select_related("template", "connection", "segment"), pk=pk
    )


@viewer_required
def campaign_list(request):
    return render(request, "campaigns/list.html", {"campaigns": campaigns_listed()})


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
    return HttpResponse(f"{count:,} recipient{pluralize(count)}")


@viewer_required
def campaign_detail(request, pk):
    return _detail_page(request, _campaign(request, pk))


def _schedule_form(campaign) -> ScheduleForm:
    """The schedule as saved; a campaign never scheduled starts in the organisation's time zone
    (TIME_ZONE), which the page's script replaces with the marketer's browser's."""
    chosen = (
        campaign.schedule_kind != Campaign.ScheduleKind.NOW
        or campaign.next_run_at is not None
        or campaign.schedule_timezone != "UTC"
    )
    initial = {
        "kind": campaign.schedule_kind,
        "timezone": campaign.schedule_timezone if chosen else settings.TIME_ZONE,
        "weekday": campaign.recurring_weekday,
        "hour": campaign.recurring_hour,
        "send_at_local": campaign.send_at_local,
        "only_new_since_last": campaign.only_new_since_last,
        "local_send_hour": campaign.local_send_hour,
    }
    return ScheduleForm(initial=initial, browser_zone=not chosen)


def _detail_page(request, campaign, *, schedule_form=None):
    progress = campaign_progress(campaign) if campaign.started_at else None
    unknown_rows = []
    if progress and progress["unknown"]:
        unknown_rows = list(
            Delivery.objects.filter(campaign=campaign, status=Delivery.Status.UNKNOWN).order_by(
                "id"
            )[:200]
        )
    estimate_days = None
    if (
        campaign.connection
        and campaign.connection.warmup_plan
        and campaign.status in (Campaign.Status.DRAFT, Campaign.Status.SCHEDULED)
    ):
        estimate_days = warmup_days_needed(campaign.connection, audience_count(campaign))
    final = (Campaign.Status.FINISHED, Campaign.Status.CANCELLED)
    alerts = campaign_alerts(campaign) if campaign.status not in final else []
    held = [a for a in alerts if a.level == "critical" and a.acknowledgement is None]
    return render(
        request,
        "campaigns/detail.html",
        {
            "campaign": campaign,
            "alerts": alerts,
            "held": held,
            "acknowledge_form": AlertAcknowledgeForm(),
            "progress": progress,
            "unknown_rows": unknown_rows,
            "audience": audience_count(campaign) if campaign.status == "draft" else None,
            "schedule_summary": schedule_summary(campaign),
            "schedule_form": schedule_form or _schedule_form(campaign),
            "test_form": TestSendForm(initial={"addresses": campaign.seed_addresses}),
            "estimate_days": estimate_days,
            "occurrences": campaign.occurrences.all()[:20],
        },
    )


@viewer_required
def campaign_progress_partial(request, pk):
    """What the campaign page polls: a few counter rows, never the ledger. When the state
    changed since the page was drawn (scheduled -> running -> finished), the whole page is
    reloaded so that its actions match."""
    campaign = _campaign(request, pk)
    seen = request.GET.get("seen", "")
    if seen and seen != campaign.status:
        response = HttpResponse(status=200)
        response["HX-Refresh"] = "true"
        return response
    progress = campaign_progress(campaign) if campaign.started_at else None
    return render(
        request,
        "campaigns/_progress.html",
        {"campaign": campaign, "progress": progress},
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
            "held": holding_alerts(campaign),
            # The whole saved schedule, so an override posted from here keeps the chosen time.
            "schedule_form": _schedule_form(campaign),
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
        # The page again, with what was typed and each error next to its field.
        messages.error(request, "Not scheduled: see the schedule form below.")
        return _detail_page(request, campaign, schedule_form=form)
    data = form.cleaned_data
    override = data["override"]
    if override and not has_role(request.user, Role.ADMIN):
        messages.error(request, "Only an admin can override blocking findings.")
        return redirect("campaigns:preflight", pk=pk)
    form.apply_to(campaign)
    success = "Scheduled."
    if campaign.schedule_kind == Campaign.ScheduleKind.ONCE:
        success = f"Scheduled for {describe_instant(data['send_at'], campaign.schedule_timezone)}"
        if data["repeated"]:
            success += f", the first of the two {data['send_at_local']:%H:%M}s that night"
        success += f", {data['send_at']:%Y-%m-%d %H:%M} UTC."

    def schedule():
        campaign.save()
        services.campaign_schedule(
            campaign=campaign, user=request.user, override=override, check_links=True
        )
        if campaign.schedule_kind == Campaign.ScheduleKind.NOW:
            transaction.on_commit(campaigns_dispatch.delay)

    return _act(request, campaign, schedule, success)


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
@admin_required
def campaign_acknowledge(request, pk):
    """An admin acknowledges the critical alerts holding the campaign (a note is required),
    then a paused campaign resumes; a draft may be scheduled, a due scheduled one starts."""
    campaign = _campaign(request, pk)
    form = AlertAcknowledgeForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(str(e) for e in errors))
        return redirect("campaigns:detail", pk=pk)
    holding = {alert.pk for alert in holding_alerts(campaign)}
    chosen = [alert for alert in form.cleaned_data["alert"] if alert.pk in holding]
    if not chosen:
        messages.error(request, "Nothing to acknowledge: no alert shown holds this campaign now.")
        return redirect("campaigns:detail", pk=pk)
    note = form.cleaned_data["note"]
    for alert in chosen:
        alert_acknowledge(alert=alert, user=request.user, note=note, campaign=campaign)
    done = f"{len(chosen)} alert{pluralize(len(chosen))} acknowledged"
    if campaign.status == Campaign.Status.PAUSED:
        return _act(
            request,
            campaign,
            lambda: services.campaign_resume(campaign=campaign),
            done + "; resumed.",
        )
    if campaign.status == Campaign.Status.SCHEDULED:
        transaction.on_commit(campaigns_dispatch.delay)
        messages.success(request, done + ": it starts when due.")
    else:
        messages.success(request, done + ".")
    return redirect("campaigns:detail", pk=pk)


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
    decision = request.POST.get("decision", "")
    if decision not in ("resend", "accept"):
        messages.error(request, "Choose whether to resend or accept.")
        return redirect("campaigns:detail", pk=pk)
    ids = None
    if request.POST.get("scope") != "all":
        ids = [int(i) for i in request.POST.getlist("ids") if i.isdigit()]
        if not ids:
            messages.error(request, "Tick the deliveries to decide about, or decide for all.")
            return redirect("campaigns:detail", pk=pk)
    resend = decision == "resend"
    count = services.delivery_resolve_unknown(
        campaign=campaign, resend=resend, ids=ids, user=request.user
    )
    messages.success(request, f"{count} deliveries {'queued again' if resend else 'accepted'}.")
    return redirect("campaigns:detail", pk=pk)


@require_POST
@editor_required
def campaign_test_send(request, pk):
    campaign = _campaign(request, pk)
    form = TestSendForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for e in form.errors["addresses"]))
        return redirect("campaigns:detail", pk=pk)
    addresses = form.cleaned_data["addresses"]
    Campaign.objects.filter(pk=pk).update(seed_addresses="\n".join(addresses))
    try:
        test_send_to_seeds(campaign=campaign, addresses=addresses)
    except Exception as exc:  # any ESP backend's own errors: the marketer reads them here
        messages.error(request, f"The test send failed: {exc}")
    else:
        where = (
            "captured in the sandbox inbox"
            if campaign.is_test
            else ("sent to the seed list and copied to the sandbox inbox")
        )
        messages.success(
            request, f"{len(addresses)} test message{pluralize(len(addresses))} {where}."
        )
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


SANDBOX_PAGE_SIZE = 50


@viewer_required
def sandbox_inbox(request):
    """Every captured message, newest first, in keyset pages ("after"/"before" an id, never
    OFFSET), searchable by recipient or subject."""
    filters = {
        key: request.GET.get(key, "").replace("\x00", "").strip()[:200] for key in ("q", "campaign")
    }
    filters = {key: value for key, value in filters.items() if value}
    qs = SandboxMessage.objects.select_related("campaign").defer("raw", "html", "text", "headers")
    if filters.get("campaign", "").isdigit() and len(filters["campaign"]) <= 18:
        qs = qs.filter(campaign_id=int(filters["campaign"]))
    if filters.get("q"):
        qs = qs.filter(Q(to__icontains=filters["q"]) | Q(subject__icontains=filters["q"]))
    after, before = request.GET.get("after", ""), request.GET.get("before", "")
    size = SANDBOX_PAGE_SIZE
    if before.isdigit() and len(before) <= 18:
        rows = list(qs.filter(id__gt=int(before)).order_by("id")[: size + 1])
        has_newer, rows, has_older = len(rows) > size, list(reversed(rows[:size])), True
    else:
        paged = after.isdigit() and len(after) <= 18
        if paged:
            qs = qs.filter(id__lt=int(after))
        rows = list(qs.order_by("-id")[: size + 1])
        has_older, rows, has_newer = len(rows) > size, rows[:size], paged
    base = urlencode(filters)
    return render(
        request,
        "campaigns/sandbox.html",
        {
            "messages_list": rows,
            "filters": filters,
            "older_url": f"?{base}&after={rows[-1].id}" if rows and has_older else "",
            "newer_url": f"?{base}&before={rows[0].id}" if rows and has_newer else "",
        },
    )


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
