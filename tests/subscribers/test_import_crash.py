import time

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile

from core.roles import Role
from subscribers.importing import import_job_create, import_run
from subscribers.models import ImportJob, ImportRejection, Subscriber
from subscribers.tasks import import_subscribers_task
from tests.support.workers import Worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

QUEUE = "subscribers-crash-test"  # its own queue: the session's shared worker must not take it


def test_a_worker_killed_mid_import_leaves_nothing_half_imported_and_a_rerun_completes():
    for role in Role:  # what an earlier transactional test may have flushed
        Group.objects.get_or_create(name=role.value)
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
    # What the redelivered task does: the lock died with the connection, the run is complete.
    job = import_run(job=job)
    assert job.status == ImportJob.Status.DONE, job.error
    assert (job.created, job.rejected) == (150_000, 1)
