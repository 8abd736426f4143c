"""Every CSV a marketer downloads opens in a spreadsheet as text, never as a live formula."""

import csv
import io

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from subscribers.importing import import_job_create, import_run
from subscribers.models import ImportJob
from subscribers.services import subscriber_create

pytestmark = pytest.mark.django_db

FORMULA = "=cmd|' /C calc'!A0"


def _rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_subscriber_export_quotes_formulas_in_every_column(editor_client, custom_fields):
    subscriber_create(
        email="ann@example.com",
        first_name=FORMULA,
        last_name="+1+2",
        attributes={"company": "@SUM(A1)", "score": -5},
    )
    subscriber_create(email="bob@example.com", first_name="-2", last_name="\tTab")
    rows = _rows(editor_client.get(reverse("subscribers:export")))
    header, *body = rows
    by_email = {r[0]: dict(zip(header, r, strict=True)) for r in body}
    ann, bob = by_email["ann@example.com"], by_email["bob@example.com"]
    assert ann["first_name"] == "'" + FORMULA
    assert (ann["last_name"], ann["company"]) == ("'+1+2", "'@SUM(A1)")
    assert ann["score"] == "-5"  # a number is not a formula
    assert (bob["first_name"], bob["last_name"]) == ("'-2", "'\tTab")


def test_the_rejected_rows_download_quotes_formulas(editor_client, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    data = f'name,email\n"{FORMULA}",not-an-address\n"\rX",ok@example.com\n'.encode()
    job = import_job_create(file=ContentFile(data), name="people.csv")
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
    assert import_run(job=job).rejected == 1
    rows = _rows(editor_client.get(reverse("subscribers:import_rejections", args=[job.pk])))
    assert rows[0] == ["line", "reason", "name", "email"]
    assert rows[1][0] == "2" and rows[1][2:] == ["'" + FORMULA, "not-an-address"]


def test_a_viewer_reads_an_import_but_is_offered_no_per_person_file_or_action(
    viewer_client, editor_user, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    done = import_job_create(file=ContentFile(b"email\nbad\nb@example.com\n"), name="b.csv")
    ImportJob.objects.filter(pk=done.pk).update(status=ImportJob.Status.QUEUED)
    assert import_run(job=done).rejected == 1
    pending = import_job_create(file=ContentFile(b"email\na@example.com\n"), name="a.csv")
    rejected = reverse("subscribers:import_rejections", args=[done.pk])
    mapping = reverse("subscribers:import_mapping", args=[pending.pk])

    def pages():
        return [
            viewer_client.get(reverse("subscribers:import_detail", args=[job.pk])).content.decode()
            for job in (done, pending)
        ]

    done_page, pending_page = pages()
    assert "not a valid email" in done_page  # the figures and reasons stay readable
    assert rejected not in done_page and mapping not in pending_page
    assert viewer_client.get(rejected).status_code == 403
    viewer_client.force_login(editor_user)
    done_page, pending_page = pages()
    assert rejected in done_page and mapping in pending_page
