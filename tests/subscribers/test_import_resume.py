"""An import whose worker died shows as stopped, and can be run again at once."""

import psycopg
from django.core.files.base import ContentFile
from django.db import connection

from subscribers.importing import LOCK_CLASS, import_job_create, import_run
from subscribers.models import ImportJob, Subscriber

CSV = b"email,first_name\nann@example.com,Ann\nbob@example.com,Bob\n"


def _running_job() -> ImportJob:
    job = import_job_create(file=ContentFile(CSV), name="list.csv")
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)
    job.refresh_from_db()
    return job


def _other_connection():
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        dbname=db["NAME"],
        autocommit=True,
    )


def test_a_running_import_nobody_holds_is_stopped_and_runs_again(
    editor_client, django_capture_on_commit_callbacks
):
    job = _running_job()
    page = editor_client.get(f"/subscribers/import/{job.pk}/").content.decode()
    assert "This import stopped" in page and "Run it again" in page
    assert 'hx-trigger="every 1s"' not in page  # no polling of a job that will not move
    with django_capture_on_commit_callbacks() as queued:
        response = editor_client.post(f"/subscribers/import/{job.pk}/resume")
    assert response.status_code == 302 and len(queued) == 1
    # What the queued task does:
    job = import_run(job=job)
    assert job.status == ImportJob.Status.DONE and job.created == 2
    assert Subscriber.objects.count() == 2


def test_an_import_whose_worker_is_alive_is_left_alone(
    editor_client, django_capture_on_commit_callbacks
):
    job = _running_job()
    with _other_connection() as worker:  # a live worker holds the job's lock
        worker.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_CLASS, job.pk])
        page = editor_client.get(f"/subscribers/import/{job.pk}/").content.decode()
        assert "This import stopped" not in page and 'hx-trigger="every 1s"' in page
        with django_capture_on_commit_callbacks() as queued:
            editor_client.post(f"/subscribers/import/{job.pk}/resume")
        assert queued == []


def test_viewers_see_a_stopped_import_but_cannot_run_it(viewer_client):
    job = _running_job()
    page = viewer_client.get(f"/subscribers/import/{job.pk}/").content.decode()
    assert "This import stopped" in page and "Run it again" not in page
    assert viewer_client.post(f"/subscribers/import/{job.pk}/resume").status_code == 403
