"""The bulk-sender readiness page of a sending domain (see analytics.readiness): the last
run's verdicts, and a button that sends a new seed message. The run happens in a worker; the
page polls it with htmx while it is under way."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.roles import editor_required, viewer_required

from .models import ReadinessRun, SendingDomain
from .readiness import ReadinessError, readiness_configured, readiness_run_start, run_stale_after
from .readiness_judge import GMAIL_COMPLAINTS_NOTE


def _context(domain: SendingDomain) -> dict:
    run = domain.readiness_runs.first()
    results = run.results if run and run.status == ReadinessRun.Status.DONE else []
    return {
        "domain": domain,
        "run": run,
        # A run no worker finished stops the polling and frees the button.
        "stale": bool(
            run
            and run.status == ReadinessRun.Status.RUNNING
            and run.started_at < timezone.now() - run_stale_after()
        ),
        "results": results,
        "counts": {
            status: sum(1 for r in results if r["status"] == status)
            for status in ("pass", "fail", "unknown")
        },
        "configured": readiness_configured(),
        "gmail_note": GMAIL_COMPLAINTS_NOTE,
    }


@viewer_required
def domain_readiness(request, pk: int):
    domain = get_object_or_404(SendingDomain, pk=pk)
    if request.htmx:
        return render(request, "analytics/_readiness_run.html", _context(domain))
    return render(request, "analytics/readiness.html", _context(domain))


@editor_required
@require_POST
def domain_readiness_run(request, pk: int):
    domain = get_object_or_404(SendingDomain, pk=pk)
    try:
        readiness_run_start(domain=domain, user=request.user)
    except ReadinessError as exc:
        messages.error(request, str(exc))
    return redirect("analytics:domain-readiness", pk=domain.pk)
