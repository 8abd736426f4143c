import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from subscribers.models import ConsentRecord, ImportJob, Subscriber, Subscription
from tests.support.api import error_of
from tests.support.factories import CustomFieldFactory, TopicFactory


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def upload(api, data: bytes, **fields):
    return api.client.post(
        "/api/v1/imports",
        {"file": SimpleUploadedFile("people.csv", data, content_type="text/csv"), **fields},
    )


def test_a_csv_import_runs_through_the_dashboards_machinery_with_its_report(
    api, eager, django_capture_on_commit_callbacks
):
    TopicFactory(slug="news")
    CustomFieldFactory(key="plan")
    data = (
        b"Email;First name;Plan\n"
        b"ann@example.com;Ann;pro\n"
        b"not-an-address;Bob;free\n"
        b"cy@example.com;Cy;free\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(
            api, data, topics="news", confirmed="true", consent_note="Webinar sign-up sheet"
        )
    assert response.status_code == 202, response.content
    started = response.json()
    assert started["header"] == ["Email", "First name", "Plan"]
    assert started["mapping"] == {"0": "email", "1": "first_name", "2": "attr:plan"}
    job = api.get(f"/imports/{started['id']}").json()
    assert job["status"] == "done" and job["percent"] == 100, job
    assert (job["created"], job["rejected"]) == (2, 1)
    ann = Subscriber.objects.get(email="ann@example.com")
    assert ann.status == "active" and ann.attributes == {"plan": "pro"} and ann.first_name == "Ann"
    assert Subscription.objects.filter(topic__slug="news").count() == 2
    assert ConsentRecord.objects.filter(text="Webinar sign-up sheet").count() == 2
    report = api.get(f"/imports/{started['id']}/rejections").json()
    assert [(r["line"], r["raw"]) for r in report["data"]] == [(3, "not-an-address;Bob;free")]
    assert ImportJob.objects.get().created_by == f"api:{api.key.name}"


def test_a_given_mapping_is_used_and_a_bad_one_refused(
    api, eager, django_capture_on_commit_callbacks
):
    data = b"a,b\nx,ann@example.com\n"
    refused = upload(api, data, mapping='{"0": "email", "1": "password"}')
    assert refused.status_code == 422 and error_of(refused)["field"] == "mapping"
    assert not ImportJob.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        ok = upload(api, data, mapping='{"0": "first_name", "1": "email"}')
    assert ok.status_code == 202, ok.content
    assert Subscriber.objects.get().first_name == "x"


def test_confirmed_needs_a_consent_note_and_a_read_key_cannot_import(api, make_api):
    refused = upload(api, b"email\nann@example.com\n", confirmed="true")
    assert refused.status_code == 422 and error_of(refused)["field"] == "consent_note"
    reader = make_api("read")
    assert upload(reader, b"email\nann@example.com\n").status_code == 403
    assert not ImportJob.objects.exists()
