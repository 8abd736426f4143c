from dataclasses import dataclass

import dns.exception
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from campaigns.models import Campaign, Delivery, SendingConnection
from core.csv_download import csv_response
from core.roles import (
    Role,
    admin_required,
    editor_required,
    has_role,
    personal_data_export_required,
    viewer_required,
)
from preferences.selectors import campaign_exit_survey
from subscribers.models import Subscriber

from . import buffer, reports
from .blocklists import sending_domain_blocklists_check
from .dkim_keys import DkimKeyError, dkim_key_activate, dkim_key_create, dkim_key_revoke
from .dns_checks import dkim_record, resolver, sending_domain_check
from .forms import CampaignTrackingForm, SendingDomainForm, SunsetPolicyForm
from .hygiene import sunset_policy, sunset_preview_refresh, sunset_run
from .models import (
    BounceMessage,
    CampaignTracking,
    DkimKey,
    ReputationAlert,
    SendingDomain,
    SubscriberEngagement,
)
from .reputation import alert_resolve, thresholds
from .selectors import subscriber_timeline

TIMELINE_PAGE = 100  # rows of a subscriber's timeline per page


@viewer_required
def analytics_home(request):
    trend = reports.campaigns_trend()
    return render(
        request,
        "analytics/home.html",
        {
            "alerts": ReputationAlert.objects.filter(resolved_at__isnull=True)[:20],
            "backlog": buffer.backlog(),
            "tiles": reports.reputation_tiles(),
            "thresholds": {str(k): v for k, v in thresholds().items()},
            "window_days": settings.REPUTATION_WINDOW_DAYS,
            "growth": reports.list_growth(),
            "engagement": reports.engagement_trend(),
            "trend": trend,
            "trend_chart": {
                "labels": [row["campaign"].name[:30] for row in trend],
                "open_rate": [round((row["open_rate"] or 0) * 100, 2) for row in trend],
                "click_rate": [round((row["click_rate"] or 0) * 100, 2) for row in trend],
            },
        },
    )


def _campaign(pk: int) -> Campaign:
    return get_object_or_404(Campaign, pk=pk)


@viewer_required
def campaign_report(request, pk: int):
    campaign = _campaign(pk)
    tracking = CampaignTracking.objects.filter(campaign=campaign).first()
    return render(
        request,
        "analytics/campaign.html",
        {
            "campaign": campaign,
            "summary": reports.campaign_summary(campaign),
            "series": reports.campaign_series(campaign),
            "links": reports.campaign_links(campaign),
            "clients": reports.campaign_breakdown(campaign, "client", "human_opens"),
            "devices": reports.campaign_breakdown(campaign, "device", "human_opens"),
            "domains": reports.campaign_breakdown(campaign, "domain", "delivered"),
            "exit_survey": campaign_exit_survey(campaign.pk),
            "tracking_form": CampaignTrackingForm(instance=tracking),
            "alerts": ReputationAlert.objects.filter(
                scope="campaign", key=str(campaign.pk), resolved_at__isnull=True
            ),
        },
    )


@editor_required
@require_POST
def campaign_tracking(request, pk: int):
    campaign = _campaign(pk)
    tracking = CampaignTracking.objects.filter(campaign=campaign).first()
    form = CampaignTrackingForm(
        request.POST, instance=tracking or CampaignTracking(campaign=campaign)
    )
    if form.is_valid():
        form.save()
        messages.success(request, "Tracking settings saved.")
    else:
        messages.error(
            request,
            "Tracking settings not saved: "
            + "; ".join(f"{k}: {' '.join(str(e) for e in v)}" for k, v in form.errors.items()),
        )
    return redirect("analytics:campaign", pk=campaign.pk)


@personal_data_export_required
def campaign_csv(request, pk: int):
    """Per-recipient outcome, streamed in keyset pages (constant memory at any size)."""
    campaign = _campaign(pk)
    columns = [
        "email",
        "status",
        "sent_at",
        "activity__esp_status",
        "activity__delivered_at",
        "activity__bounce_type",
        "activity__complained_at",
        "activity__unsubscribed_at",
        "activity__opens",
        "activity__human_opens",
        "activity__clicks",
        "activity__human_clicks",
        "activity__first_human_open_at",
        "activity__first_human_click_at",
    ]
    header = [c.removeprefix("activity__") for c in columns]

    def rows():
        yield header
        after = 0
        while True:
            page = list(
                Delivery.objects.filter(campaign=campaign, id__gt=after)
                .order_by("id")
                .values_list("id", *columns)[:2000]
            )
            if not page:
                return
            for row in page:
                yield row[1:]
            after = page[-1][0]

    return csv_response(rows(), filename=f"campaign-{campaign.pk}.csv")


@editor_required
@require_POST
def alert_resolve_view(request, pk: int):
    alert = get_object_or_404(ReputationAlert, pk=pk)
    # A critical alert holds its campaigns until an admin acknowledges it (guardrail):
    # resolving it would lift that hold, so it takes an admin too.
    if alert.level == ReputationAlert.Level.CRITICAL and not has_role(request.user, Role.ADMIN):
        messages.error(request, "Only an admin can mark a critical alert as handled.")
        return redirect("analytics:home")
    alert_resolve(alert=alert)
    messages.success(request, "Alert marked as handled. Paused campaigns stay paused.")
    return redirect("analytics:home")


@viewer_required
def domain_list(request):
    return render(request, "analytics/domains.html", _domains_context(SendingDomainForm()))


@dataclass
class DomainCard:
    """A sending domain as its card on the domains page shows it: the blocklist listings
    (and lists that could not be asked) one by one, the clean answers in a line."""

    domain: SendingDomain
    listings: list[dict]
    not_listed: list[dict]


def _domains_context(form, editing=None) -> dict:
    known = set(SendingDomain.objects.values_list("domain", flat=True))
    used = {
        d.strip().lower()
        for d in SendingConnection.objects.exclude(sending_domain="").values_list(
            "sending_domain", flat=True
        )
    }
    cards = [
        DomainCard(
            domain=domain,
            listings=[b for b in domain.blocklist_results if b.get("status") != "pass"],
            not_listed=[b for b in domain.blocklist_results if b.get("status") == "pass"],
        )
        for domain in SendingDomain.objects.prefetch_related("dkim_keys")
    ]
    return {
        "cards": cards,
        "form": form,
        "editing": editing,
        "missing": sorted(used - known),
    }


@admin_required
@require_POST
def domain_save(request, pk: int | None = None):
    instance = get_object_or_404(SendingDomain, pk=pk) if pk else None
    form = SendingDomainForm(request.POST, instance=instance)
    if not form.is_valid():
        return render(
            request, "analytics/domains.html", _domains_context(form, instance), status=400
        )
    domain = form.save()
    sending_domain_check(domain=domain)
    sending_domain_blocklists_check(domain=domain)
    messages.success(request, f"{domain.domain} saved and checked.")
    return redirect("analytics:domains")


@admin_required
@require_POST
def dkim_key_add(request, pk: int):
    domain = get_object_or_404(SendingDomain, pk=pk)
    algorithm = request.POST.get("algorithm", DkimKey.Algorithm.RSA)
    try:
        key = dkim_key_create(domain=domain, algorithm=algorithm)
    except DkimKeyError as exc:
        messages.error(request, str(exc))
    else:
        if key.state == DkimKey.State.ACTIVE:
            messages.success(
                request,
                f"New {key.get_algorithm_display()} key {key.selector}: it signs from now on. "
                f"Publish its TXT record at {key.record_name}.",
            )
        else:
            messages.success(
                request,
                f"New key {key.selector} created. Publish its TXT record at "
                f"{key.record_name}, then activate it: the current key keeps signing until then.",
            )
    return redirect("analytics:domains")


@admin_required
@require_POST
def dkim_key_action(request, pk: int, action: str):
    key = get_object_or_404(DkimKey.objects.select_related("domain"), pk=pk)
    try:
        if action == "activate":
            if request.POST.get("force") != "1":
                tags = dkim_record(resolver(), key.record_name)
                published = "".join((tags or {}).get("p", "").split())
                if published != key.public_key:
                    messages.error(
                        request,
                        f"{key.record_name} does not publish this key yet"
                        f"{' (another key is there)' if published else ''}. Publish it and "
                        "try again, or activate anyway if your DNS is not visible from here.",
                    )
                    return redirect("analytics:domains")
            dkim_key_activate(key=key)
            messages.success(request, f"{key.selector} signs from now on.")
        elif action == "revoke":
            dkim_key_revoke(key=key)
            messages.success(request, f"{key.selector} no longer signs: remove its DNS record.")
        else:
            return HttpResponseBadRequest("Unknown action")
    except DkimKeyError as exc:
        messages.error(request, str(exc))
    except dns.exception.DNSException as exc:
        messages.error(request, f"Could not look up {key.record_name}: {exc}")
    return redirect("analytics:domains")


@editor_required
@require_POST
def domain_check(request, pk: int):
    domain = get_object_or_404(SendingDomain, pk=pk)
    sending_domain_check(domain=domain)
    sending_domain_blocklists_check(domain=domain)
    messages.success(request, f"{domain.domain} checked.")
    return redirect("analytics:domains")


@viewer_required
def bounce_messages(request):
    """What the bounce mailbox held: unreadable messages first (they wait for a person)."""
    kind = request.GET.get("kind", "")
    rows = BounceMessage.objects.all()
    if kind in BounceMessage.Kind.values:
        rows = rows.filter(kind=kind)
    page = Paginator(rows.order_by("-received_at", "-uid"), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "analytics/bounces.html",
        {
            "page": page,
            "kind": kind,
            "kinds": BounceMessage.Kind.choices,
            "unparseable": BounceMessage.objects.filter(
                kind=BounceMessage.Kind.UNPARSEABLE
            ).count(),
            "configured": bool(settings.BOUNCE_IMAP_URL),
            "bounce_domain": settings.BOUNCE_DOMAIN,
        },
    )


@viewer_required
def hygiene(request):
    policy = sunset_policy()
    return render(
        request,
        "analytics/hygiene.html",
        {"policy": policy, "form": SunsetPolicyForm(instance=policy), "preview": policy.preview},
    )


@editor_required
@require_POST
def hygiene_preview(request):
    sunset_preview_refresh(policy=sunset_policy())
    messages.success(request, "Preview recomputed.")
    return redirect("analytics:hygiene")


@admin_required
@require_POST
def hygiene_save(request):
    policy = sunset_policy()
    form = SunsetPolicyForm(request.POST, instance=policy)
    if form.is_valid():
        sunset_preview_refresh(policy=form.save())
        messages.success(request, "Sunset policy saved. Check the preview before running it.")
    else:
        messages.error(
            request,
            "Not saved: "
            + "; ".join(f"{k}: {' '.join(str(e) for e in v)}" for k, v in form.errors.items()),
        )
    return redirect("analytics:hygiene")


@admin_required
@require_POST
def hygiene_run(request):
    policy = sunset_policy()
    if not policy.enabled:
        messages.error(request, "The sunset policy is disabled: enable it first.")
        return redirect("analytics:hygiene")
    if not policy.preview_is_current:
        messages.error(request, "Compute the preview for these settings before running.")
        return redirect("analytics:hygiene")
    n = sunset_run(policy=policy)
    messages.success(
        request, f"{n} inactive subscriber{pluralize(n)} unsubscribed by the sunset policy."
    )
    return redirect("analytics:hygiene")


@viewer_required
def subscriber_timeline_view(request, pk: int):
    """A subscriber's deliveries and events: a fragment the subscriber page can include
    (hx-get), or a page of its own."""

    subscriber = get_object_or_404(Subscriber, pk=pk)
    before = None
    if request.GET.get("before"):
        try:
            before = parse_datetime(request.GET["before"])
        except ValueError:
            before = None
        if before is None or timezone.is_naive(before):
            return HttpResponseBadRequest("'before' must be a date and time with its offset.")
    engagement = SubscriberEngagement.objects.filter(subscriber=subscriber).first()
    template = "analytics/_timeline.html" if request.htmx else "analytics/subscriber_timeline.html"
    # One row more than a page tells whether there is an older page.
    rows = subscriber_timeline(subscriber.pk, limit=TIMELINE_PAGE + 1, before=before)
    older = rows[TIMELINE_PAGE - 1]["at"].isoformat() if len(rows) > TIMELINE_PAGE else ""
    return render(
        request,
        template,
        {
            "subscriber": subscriber,
            "timeline": rows[:TIMELINE_PAGE],
            "older": older,
            "paged": before is not None,
            "engagement": engagement,
        },
    )
