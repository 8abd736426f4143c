import time

import pytest
from django.core.files.base import ContentFile

from subscribers.importing import import_job_create, import_run
from subscribers.models import ImportJob, ImportRejection, Subscriber
from subscribers.tasks import import_subscribers_task, imports_resume_stalled
from tests.support.workers import Worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

QUEUE = "subscribers-crash-test"  # its own queue: the session's shared worker must not take it


def test_a_worker_killed_mid_import_leaves_nothing_half_imported_and_a_rerun_completes(
    role_groups,
):
    rows = b"email,first_name\n" + b"".join(
        f"user{i}@example.com,U{i}\n".encode() for i in range(150_000)
    )
    job = import_job_create(file=ContentFile(rows + b"broken\n"), name="big.csv")
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
    worker = Worker(concurrency=1, CELERY_QUEUE=QUEUE)
    try:
        import_subscribers_task.apply_async((job.pk,), queue=QUEUE)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status == ImportJob.Status.RUNNING and job.rows_read > 0:
                break
            time.sleep(0.05)
        # Killed while running: the chunks parsed so far are merged inside the open transaction.
        assert job.status == ImportJob.Status.RUNNING, worker.output()
        worker.kill()
    finally:
        worker.stop()
    time.sleep(0.5)  # the killed backend's transaction is rolled back by PostgreSQL
    assert Subscriber.objects.count() == 0
    assert ImportRejection.objects.count() == 0
    # Nobody redelivers it for an hour; beat's periodic task sees its lock free (the worker
    # died) and queues it again, and a live worker completes it within the minute.
    from nofailmail.celery import app as celery_app

    previous = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = QUEUE
    restarted = Worker(concurrency=1, CELERY_QUEUE=QUEUE)
    try:
        restarted.wait_ready()
        assert imports_resume_stalled() == [job.pk]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status == ImportJob.Status.DONE:
                break
            time.sleep(0.2)
        assert imports_resume_stalled() == []  # done: left alone
    finally:
        celery_app.conf.task_default_queue = previous
        restarted.stop()
    assert job.status == ImportJob.Status.DONE, job.error
    assert (job.created, job.rejected) == (150_000, 1)
    # A late redelivery of the first task finds the job done and imports nothing twice.
    assert import_run(job=job).created == 150_000
    assert Subscriber.objects.count() == 150_000
