"""What a spreadsheet really saves imports as the marketer wrote it: the encoding is detected,
the delimiter kept, and rows of the wrong width reported alike."""

import csv
import io
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from subscribers.models import ImportJob, Subscriber


@pytest.fixture
def media(settings, tmp_path):  # not with the worker: it stores uploads where it always does
    settings.MEDIA_ROOT = tmp_path


def _upload(client, name: str, data: bytes):
    upload = SimpleUploadedFile(name, data, content_type="text/csv")
    return client.post(reverse("subscribers:import"), {"file": upload})


def _import_in_worker(client, worker, data: bytes, mapping: dict[int, str]) -> ImportJob:
    response = _upload(client, "people.csv", data)
    assert response.status_code == 302, response.content.decode()[-2000:]
    job = ImportJob.objects.get()
    assert client.get(response["Location"]).status_code == 200  # the mapping page
    posted = {f"col_{i}": target for i, target in mapping.items()}
    response = client.post(
        reverse("subscribers:import_mapping", args=[job.pk]),
        {**posted, "confirmed": "no", "update_existing": "yes"},
    )
    assert response.status_code == 302
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED):
            break
        time.sleep(0.2)
    assert job.status == ImportJob.Status.DONE, job.error or worker.output()
    return job


CP1252_ROWS = [
    "E-mail;Prénom;Nom;Note",
    "renee@example.com;Renée;O\u2019Brien;“VIP” 5 €",  # 2
    "short@example.com;Shorty;Row",  # 3: a cell missing
    "long@example.com;Long;Row;note;surprise",  # 4: a cell too many
    "zoe@example.com;Zoë;Dupré;",  # 5
]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_windows_1252_semicolon_file_imports_and_its_rejects_keep_the_semicolons(
    role_groups, worker_process, admin_client
):
    data = ("\r\n".join(CP1252_ROWS) + "\r\n").encode("cp1252")
    job = _import_in_worker(
        admin_client, worker_process, data, {0: "email", 1: "first_name", 2: "last_name"}
    )
    assert job.options["encoding"] == "cp1252" and job.options["delimiter"] == ";"
    assert job.options["header"] == ["E-mail", "Prénom", "Nom", "Note"]
    renee = Subscriber.objects.get(email="renee@example.com")
    assert (renee.first_name, renee.last_name) == ("Renée", "O\u2019Brien")
    assert Subscriber.objects.get(email="zoe@example.com").last_name == "Dupré"
    # A short row and a long row: both refused, each saying which it was.
    reasons = {r.line: r.reason for r in job.rejections.all()}
    assert reasons == {
        3: "3 columns where the header has 4: too few",
        4: "5 columns where the header has 4: too many",
    }
    page = admin_client.get(reverse("subscribers:import_detail", args=[job.pk])).content.decode()
    assert "too few" in page and "too many" in page
    response = admin_client.get(reverse("subscribers:import_rejections", args=[job.pk]))
    text = b"".join(response.streaming_content).decode()
    lines = text.splitlines()
    assert lines[0] == "line;reason;E-mail;Prénom;Nom;Note"
    assert lines[1] == "3;3 columns where the header has 4: too few;short@example.com;Shorty;Row"
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[2][2:] == ["long@example.com", "Long", "Row", "note", "surprise"]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_utf16_file_with_a_bom_imports(role_groups, worker_process, admin_client):
    text = "Email\tFirst name\r\nzoe@example.com\tZoë “Z”\r\nli@example.com\t李\r\n"
    job = _import_in_worker(
        admin_client, worker_process, text.encode("utf-16"), {0: "email", 1: "first_name"}
    )
    assert (job.created, job.rejected) == (2, 0)
    assert Subscriber.objects.get(email="zoe@example.com").first_name == "Zoë “Z”"
    assert Subscriber.objects.get(email="li@example.com").first_name == "李"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 8, "Excel workbook"),
        (bytes(range(256)) * 40, "encoding could not be recognised"),
    ],
)
def test_a_file_that_is_not_text_is_refused_naming_the_problem(
    media, admin_client, data, message, tmp_path
):
    response = _upload(admin_client, "people.csv", data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ImportJob.objects.exists()
    assert not list(tmp_path.rglob("*.csv"))  # the refused upload is not kept
