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
