"""The import's mapping page makes a custom field on the spot ("New field…", a name and a type)
and the import fills it: uploaded, mapped and started through the pages, as a browser posts."""

import lxml.html
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from nofailmail.celery import app as celery_app
from subscribers.models import CustomField, ImportJob, Subscriber
from tests.support.factories import CustomFieldFactory

CSV = "email;Company size;Plan\nada@example.com;12;pro\nbob@example.com;3;free\n"


@pytest.fixture
def eager():
    before = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.update(task_always_eager=True, task_eager_propagates=True)
    yield
    celery_app.conf.update(task_always_eager=before[0], task_eager_propagates=before[1])


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _mapping_form(client, text=CSV):
    upload = SimpleUploadedFile("people.csv", text.encode(), content_type="text/csv")
    response = client.post(reverse("subscribers:import"), {"file": upload})
    assert response.status_code == 302
    url = response["Location"]
    page = client.get(url).content.decode()
    return _form_in(page, url)


def _form_in(page: str, url: str):
    (form,) = [f for f in lxml.html.fromstring(page).forms if "col_0" in f.fields]
    form.action = url  # it has no action attribute: it posts back to its own page
    return form


def _post(client, form, raw=None, **fields):
    for name, value in fields.items():
        form.fields[name] = value
    # raw: values no widget of the page would send (a hand-made post).
    return client.post(form.action, {**dict(form.form_values()), **(raw or {})})


def test_a_column_goes_into_a_field_made_on_the_spot(
    editor_client, media, eager, django_capture_on_commit_callbacks
):
    form = _mapping_form(editor_client)
    options = form.inputs["col_1"].value_options
    assert "new" in options
    # The name starts as the column's header; the marketer picks the type.
    assert form.fields["new_label_1"] == "Company size"
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(editor_client, form, col_1="new", new_type_1="number", col_2="ignore")
    assert response.status_code == 302, response.content.decode()[-1500:]
    field = CustomField.objects.get()
    assert (field.key, field.label, field.type) == ("company_size", "Company size", "number")
    assert ImportJob.objects.get().status == ImportJob.Status.DONE
    sizes = dict(Subscriber.objects.values_list("email", "attributes"))
    assert sizes == {
        "ada@example.com": {"company_size": 12},
        "bob@example.com": {"company_size": 3},
    }
    # The next import offers it like any other field.
    assert "attr:company_size" in _mapping_form(editor_client).inputs["col_1"].value_options


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"new_label_1": "  "}, "Company size: Give the new field a name."),
        ({"new_label_1": "Plan"}, "Company size: A field “Plan” (plan) exists already"),
        ({"raw": {"new_type_1": "choice"}}, "Company size: Choose a type for the new field."),
        # The import itself refused: the new field is not kept either.
        ({"col_0": "ignore"}, "Map one column to the email address."),
    ],
)
def test_a_new_field_that_cannot_be_made_stops_the_import_and_nothing_is_kept(
    editor_client, media, eager, fields, problem
):
    CustomFieldFactory(key="plan", label="Plan", type="choice", choices=["free", "pro"])
    form = _mapping_form(editor_client)
    response = _post(editor_client, form, **{"col_1": "new", "new_type_1": "number", **fields})
    assert response.status_code == 200
    page = response.content.decode()
    assert problem in page
    assert list(CustomField.objects.values_list("key", flat=True)) == ["plan"]
    assert ImportJob.objects.get().status == ImportJob.Status.MAPPING
    # What was chosen stays chosen.
    assert _form_in(page, form.action).fields["col_1"] == "new"
