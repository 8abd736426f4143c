"""Marketer pages about leaving: the exit-survey report and its settings."""

from collections import Counter, defaultdict

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from campaigns.models import Campaign
from core.roles import admin_required, viewer_required

from . import selectors
from .forms import PreferenceCenterSettingsForm, ReasonForm
from .models import ExitSurveyReason, ExitSurveyResponse, PreferenceCenterSettings


@viewer_required
def report(request):
    reasons = list(ExitSurveyReason.objects.all())
    labels = {r.key: r.label_en for r in reasons}
    total = ExitSurveyResponse.objects.count()

    # Grouped in PostgreSQL (one row per month and reason, and per campaign and reason), so
    # the page costs the same however many answers there are.
    monthly: defaultdict[str, Counter[str]] = defaultdict(Counter)
    totals: Counter[str] = Counter()
    for month, key, count in selectors.exit_reasons_by_month(timezone.get_current_timezone_name()):
        monthly[month][key] += count
        if key:
            totals[key] += count
    months = sorted(monthly)
    keys = [r.key for r in reasons]
    keys += sorted({k for c in monthly.values() for k in c if k not in labels and k})
    if any("" in c for c in monthly.values()):
        keys.append("")
    chart = {
        "labels": months,
        "datasets": [
            {
                "label": labels.get(key, key or "No reason given"),
                "data": [monthly[m][key] for m in months],
            }
            for key in keys
        ],
    }
    by_reason = [
        {
            "label": labels.get(key, key),
            "count": totals[key],
            "share": round(100 * totals[key] / total, 1) if total else 0,
        }
        for key in labels
    ]

    by_campaign = list(
        Campaign.objects.annotate(answers=Count("exit_survey_responses"))
        .filter(answers__gt=0)
        .order_by("-answers")[:50]
    )
    campaign_reasons: defaultdict[int, Counter[str]] = defaultdict(Counter)
    for campaign_id, key, count in selectors.exit_reasons_by_campaign([c.pk for c in by_campaign]):
        if key:
            campaign_reasons[campaign_id][key] += count
    campaign_rows = [
        {
            "campaign": c,
            "answers": c.answers,
            "top": [(labels.get(k, k), n) for k, n in campaign_reasons[c.pk].most_common(3)],
        }
        for c in by_campaign
    ]

    texts = Paginator(
        ExitSurveyResponse.objects.filter(~Q(other_text="")).select_related("campaign"), 25
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "preferences/dashboard/report.html",
        {
            "total": total,
            "chart": chart,
            "by_reason": by_reason,
            "campaign_rows": campaign_rows,
            "texts": texts,
        },
    )


@admin_required
def reasons(request):
    if request.method == "POST":
        form = ReasonForm(request.POST)
        if form.is_valid():
            form.save()
            messages.success(request, "Reason added.")
            return redirect("leaving:reasons")
    else:
        form = ReasonForm(initial={"position": ExitSurveyReason.objects.count() + 1})
    return render(
        request,
        "preferences/dashboard/reasons.html",
        {
            "reasons": ExitSurveyReason.objects.all(),
            "form": form,
            "center_settings": PreferenceCenterSettings.load(),
        },
    )


@admin_required
def reason_edit(request, reason_id: int):
    reason = get_object_or_404(ExitSurveyReason, pk=reason_id)
    form = ReasonForm(request.POST or None, instance=reason)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Reason saved.")
        return redirect("leaving:reasons")
    return render(
        request, "preferences/dashboard/reason_edit.html", {"form": form, "reason": reason}
    )


@admin_required
@require_POST
def center_settings(request):
    form = PreferenceCenterSettingsForm(request.POST, instance=PreferenceCenterSettings.load())
    if form.is_valid():
        form.save()
        messages.success(request, "Preference center settings saved.")
    else:
        messages.error(request, "These settings could not be saved.")
    return redirect("leaving:reasons")
