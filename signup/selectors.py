"""Reads for the dashboard: forms with their counts, and per-form stats (a few GROUP BYs)."""

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from .models import FormView, Signup, SignupForm


def forms_with_counts() -> QuerySet[SignupForm]:
    views = (
        FormView.objects.filter(form=OuterRef("pk"))
        .values("form")
        .annotate(total=Sum("count"))
        .values("total")
    )
    signups = (
        Signup.objects.filter(form=OuterRef("pk"))
        .values("form")
        .annotate(
            total=Count("id"),
        )
        .values("total")
    )
    confirmed = (
        Signup.objects.filter(form=OuterRef("pk"), confirmed_at__isnull=False)
        .values("form")
        .annotate(total=Count("id"))
        .values("total")
    )
    zero = Value(0, output_field=IntegerField())
    return SignupForm.objects.select_related("lead_magnet").annotate(
        view_count=Coalesce(Subquery(views, output_field=IntegerField()), zero),
        signup_count=Coalesce(Subquery(signups, output_field=IntegerField()), zero),
        confirmed_count=Coalesce(Subquery(confirmed, output_field=IntegerField()), zero),
    )


def _rate(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def form_stats(form: SignupForm) -> dict:
    """Views, the funnel (step 1, each later step, confirmed), rates, and the same by source."""
    steps = max(len(form.steps), 1)
    views = FormView.objects.filter(form=form).aggregate(total=Sum("count"))["total"] or 0
    aggregates = {
        f"step_{n}": Count("id", filter=Q(steps_completed__gte=n)) for n in range(1, steps + 1)
    }
    aggregates["confirmed"] = Count("id", filter=Q(confirmed_at__isnull=False))
    aggregates["downloads"] = Count("id", filter=Q(downloaded_at__isnull=False))
    counts = Signup.objects.filter(form=form).aggregate(**aggregates)
    funnel = [("Views", views)]
    funnel += [(f"Step {n}", counts[f"step_{n}"]) for n in range(1, steps + 1)]
    if form.double_opt_in:
        funnel.append(("Confirmed", counts["confirmed"]))

    keys = ("source_page", "utm_source", "utm_medium", "utm_campaign")
    by_source: dict[tuple, dict] = {}
    for row in FormView.objects.filter(form=form).values(*keys).annotate(views=Sum("count")):
        by_source.setdefault(
            tuple(row[k] for k in keys), {"views": 0, "step_1": 0, "confirmed": 0}
        )["views"] = row["views"]
    for row in (
        Signup.objects.filter(form=form)
        .values(*keys)
        .annotate(
            step_1=Count("id"),
            confirmed=Count("id", filter=Q(confirmed_at__isnull=False)),
        )
    ):
        entry = by_source.setdefault(
            tuple(row[k] for k in keys), {"views": 0, "step_1": 0, "confirmed": 0}
        )
        entry["step_1"] = row["step_1"]
        entry["confirmed"] = row["confirmed"]
    sources = [
        {
            **dict(zip(keys, key, strict=True)),
            **entry,
            "conversion": _rate(
                entry["confirmed"] if form.double_opt_in else entry["step_1"], entry["views"]
            ),
        }
        for key, entry in by_source.items()
    ]
    sources.sort(key=lambda s: (-s["views"], -s["step_1"]))
    final = counts["confirmed"] if form.double_opt_in else counts["step_1"]
    return {
        "views": views,
        "step_counts": [counts[f"step_{n}"] for n in range(1, steps + 1)],
        "submissions": counts["step_1"],
        "completed": counts[f"step_{steps}"],
        "confirmed": counts["confirmed"],
        "downloads": counts["downloads"],
        "conversion": _rate(final, views),
        "confirmation_rate": _rate(counts["confirmed"], counts["step_1"]),
        "funnel": funnel,
        "sources": sources[:50],
    }
