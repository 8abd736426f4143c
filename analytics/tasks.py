from celery import shared_task

from .blocklists import sending_domains_blocklists_check
from .bounce_mailbox import bounce_mailbox_poll as poll
from .buffer import flush
from .dns_checks import sending_domain_check, sending_domains_check
from .hygiene import engagement_scores_refresh
from .models import ReadinessRun, SendingDomain
from .partitions import event_partitions_drop_expired as drop_expired
from .partitions import event_partitions_ensure as ensure
from .readiness import readiness_run_complete


@shared_task
def tracking_flush() -> int:
    """Write the buffered opens and clicks (beat runs it every TRACKING_FLUSH_SECONDS)."""
    return flush()


@shared_task
def event_partitions_ensure() -> list[str]:
    """Beat: make the events' partitions for this month and the next EVENT_PARTITIONS_AHEAD."""
    return ensure()


@shared_task
def event_partitions_drop_expired() -> list[str]:
    """Beat: drop the events' months older than EVENT_RETENTION_MONTHS."""
    return drop_expired()


@shared_task
def dns_check_all() -> int:
    return sending_domains_check()


@shared_task
def blocklists_check_all() -> int:
    """Beat: every sending domain's dedicated IPs against the DNS blocklists."""
    return sending_domains_blocklists_check()


@shared_task
def dns_check(domain_id: int) -> None:
    domain = SendingDomain.objects.filter(pk=domain_id).first()
    if domain is not None:
        sending_domain_check(domain=domain)


@shared_task
def engagement_refresh() -> int:
    return engagement_scores_refresh()


@shared_task(ignore_result=True)
def bounce_mailbox_poll() -> int:
    """Beat: read the bounce mailbox (BOUNCE_IMAP_URL), when one is configured."""
    return poll().read


@shared_task(ignore_result=True)
def readiness_check(run_id: int) -> None:
    """Send a readiness run's seed message, read it back and judge it (analytics.readiness)."""
    run = (
        ReadinessRun.objects.select_related("domain")
        .filter(pk=run_id, status=ReadinessRun.Status.RUNNING)
        .first()
    )
    if run is not None:
        readiness_run_complete(run=run)
