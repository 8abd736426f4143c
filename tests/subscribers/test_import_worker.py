import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from subscribers.models import ImportJob, Subscriber, Subscription

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_import_runs_in_the_worker_with_progress_and_a_summary(
    role_groups, worker_process, admin_client, topics
):
    rows = ["Email,First name"] + [f"user{i}@example.com,User {i}" for i in range(300)]
    rows += ["broken,X", "user1@example.com,Again"]
    upload = SimpleUploadedFile("people.csv", "\n".join(rows).encode(), content_type="text/csv")
    response = admin_client.post(reverse("subscribers:import"), {"file": upload})
    assert response.status_code == 302
    job = ImportJob.objects.get()
    mapping_page = admin_client.get(response["Location"])
    assert b"Import as" in mapping_page.content
    response = admin_client.post(
        reverse("subscribers:import_mapping", args=[job.pk]),
        {
            "col_0": "email",
            "col_1": "first_name",
            "topics": [topics[0].pk],
            "confirmed": "yes",
            "consent_note": "Met at the conference",
            "update_existing": "yes",
        },
    )
    assert response.status_code == 302
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED):
            break
        progress = admin_client.get(
            reverse("subscribers:import_detail", args=[job.pk]), HTTP_HX_REQUEST="true"
        )
        assert b"import-progress" in progress.content
        time.sleep(0.2)
    assert job.status == ImportJob.Status.DONE, job.error or worker_process.output()
    assert (job.created, job.rejected) == (300, 2)
    assert Subscriber.objects.filter(status="active").count() == 300
    assert Subscription.objects.filter(topic=topics[0]).count() == 300
    page = admin_client.get(reverse("subscribers:import_detail", args=[job.pk]))
    assert b"import-summary" in page.content and b"hx-trigger" not in page.content
    rejected = admin_client.get(reverse("subscribers:import_rejections", args=[job.pk]))
    text = b"".join(rejected.streaming_content).decode()
    assert "302," in text and "duplicate of line 3" in text
    assert not job.file.storage.exists(job.file.name)  # the upload is not kept once imported
