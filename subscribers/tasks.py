from celery import shared_task

from .importing import import_run
from .models import ImportJob


@shared_task(acks_late=True)
def import_subscribers_task(job_id: int) -> None:
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is not None:
        import_run(job=job)
