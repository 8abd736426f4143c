"""Thin Celery tasks, and the enqueue functions the views use (``importing`` never imports
this module: the import task runs it)."""

from datetime import timedelta

from celery import shared_task
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .importing import import_job_stalled, import_run
from .models import ImportJob


@shared_task(acks_late=True)
def import_subscribers_task(job_id: int) -> None:
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is not None:
        import_run(job=job)


def import_job_enqueue(*, job: ImportJob) -> None:
    """Run the import once the current transaction has committed."""
    transaction.on_commit(lambda: import_subscribers_task.delay(job.pk))


def import_job_resume(*, job: ImportJob) -> bool:
    """Queue a stalled import again (after the transaction commits); False if it is not
    stalled. A second copy of the task, should the broker redeliver the first one too, finds
    the job locked or done and does nothing."""
    if not import_job_stalled(job=job):
        return False
    import_job_enqueue(job=job)
    return True


@shared_task
def imports_resume_stalled() -> list[int]:
    """Queue again every import whose worker died (running, yet its lock is free), and every
    import queued for over a minute whose task was lost with a worker that had prefetched
    it. A copy that meets a live run finds the job locked or done and does nothing."""
    resumed = []
    minute_ago = timezone.now() - timedelta(minutes=1)
    candidates = ImportJob.objects.filter(
        Q(status=ImportJob.Status.RUNNING)
        | Q(status=ImportJob.Status.QUEUED, created_at__lt=minute_ago)
    )
    for job in candidates.order_by("pk")[:100]:
        if job.status == ImportJob.Status.QUEUED:
            # It may just be waiting its turn: one more copy every five minutes at most.
            if not cache.add(f"nfm:import-requeued:{job.pk}", 1, timeout=300):
                continue
        elif not import_job_stalled(job=job):
            continue
        import_subscribers_task.delay(job.pk)
        resumed.append(job.pk)
    return resumed
