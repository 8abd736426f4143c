import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command

from subscribers.importing import ImportError_, import_job_create, import_run, sniff
from subscribers.models import ConsentRecord, ImportJob, Subscriber, Subscription
from subscribers.services import suppression_add
from tests.support.factories import SubscriberFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def run_import(data: bytes, **options) -> ImportJob:
    job = import_job_create(file=ContentFile(data), name="people.csv", **options)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
    return import_run(job=job)


def rejections(job):
    return {r.line: r.reason for r in job.rejections.all()}


def test_it_creates_subscribers_with_names_and_typed_attributes(custom_fields):
    job = run_import(
        b"Email,First name,Last name,Company,Score,Birthday,VIP,Plan\n"
        b"Ann@Example.COM,Ann,Lee,Acme,12,1990-04-01,yes,pro\n"
        b"bob@example.org,Bob,,,3.5,,no,free\n"
    )
    assert job.status == ImportJob.Status.DONE, job.error
    assert (job.created, job.updated, job.rejected) == (2, 0, 0)
    ann = Subscriber.objects.get(email="ann@example.com")
    assert ann.first_name == "Ann" and ann.source == "import"
    assert ann.attributes == {
        "company": "Acme",
        "score": 12,
        "birthday": "1990-04-01",
        "vip": True,
        "plan": "pro",
    }
    assert ann.status == Subscriber.Status.UNCONFIRMED
    assert Subscriber.objects.get(email="bob@example.org").attributes == {
        "score": 3.5,
        "vip": False,
        "plan": "free",
    }


def test_every_bad_row_is_rejected_with_its_line_number_and_the_rest_imported(custom_fields):
    long_name = "x" * 151
    data = (
        "email,first_name,score,plan\n"
        "good@example.com,Good,1,free\n"  # line 2
        "not-an-address,Bad,1,free\n"  # 3
        "\n"  # 4: blank, skipped
        f"long@example.com,{long_name},1,free\n"  # 5
        "nan@example.com,N,abc,free\n"  # 6
        "choice@example.com,C,1,gold\n"  # 7
        'quoted@example.com,"two\nlines",2,pro\n'  # 8-9
        "GOOD@example.com,Again,1,free\n"  # 10: duplicate of line 2
        "extra@example.com,E,1,free,surprise\n"  # 11
        "a..b@example.com,Dots,1,free\n"  # 12
        "\n"
        "last@example.com,Last,,\n"  # 14
    ).encode()
    job = run_import(data)
    assert job.status == ImportJob.Status.DONE, job.error
    reasons = rejections(job)
    assert set(reasons) == {3, 5, 6, 7, 10, 11, 12}
    assert "not a valid email" in reasons[3]
    assert "longer than 150" in reasons[5]
    assert "not a number" in reasons[6]
    assert "not one of" in reasons[7]
    assert reasons[10] == "duplicate of line 2"
    assert "5 columns" in reasons[11]
    assert "two periods" in reasons[12]
    assert job.created == 3
    assert Subscriber.objects.get(email="quoted@example.com").first_name == "two\nlines"
    assert any("blank line" in w for w in job.warnings)


def test_a_bom_and_semicolons_are_understood(custom_fields):
    job = run_import("\ufeffE-mail;Prénom\nzoé@example.com;Zoé\n".encode())
    assert job.status == ImportJob.Status.DONE, job.error
    assert Subscriber.objects.get(email="zoé@example.com").first_name == "Zoé"


def test_latin1_files_are_decoded(custom_fields):
    job = run_import("email\tfirst_name\nleo@example.com\tLéo\n".encode("latin-1"))
    assert job.status == ImportJob.Status.DONE, job.error
    assert Subscriber.objects.get(email="leo@example.com").first_name == "Léo"


def test_unknown_columns_are_a_warning_not_an_error(custom_fields):
    job = run_import(b"email,favourite colour\nx@example.com,blue\n")
    assert job.created == 1
    assert any("favourite colour" in w for w in job.warnings)
    assert Subscriber.objects.get().attributes == {}


def test_a_file_without_an_email_column_fails_clearly_and_imports_nothing(db):
    with pytest.raises(ImportError_):
        job = import_job_create(file=ContentFile(b"name,age\nx,3\n"), name="x.csv")
        from subscribers.importing import import_job_start

        import_job_start(job=job, mapping=job.options["mapping"])
    assert Subscriber.objects.count() == 0


def test_an_empty_file_is_refused(db, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"\n\n")
    with pytest.raises(ImportError_):
        sniff(str(path))


def test_nul_bytes_and_an_unterminated_quote_do_not_crash_the_import(db):
    job = run_import(b'email,first_name\nnul@example.com,a\x00b\nok@example.com,"never closed\n')
    assert job.status == ImportJob.Status.DONE, job.error
    assert Subscriber.objects.filter(email="nul@example.com").exists()


def test_suppressed_addresses_are_skipped_and_counted(db):
    suppression_add(email="gone@example.com", reason="unsubscribed")
    job = run_import(b"email\ngone@example.com\nnew@example.com\n")
    assert (job.created, job.suppressed) == (1, 1)
    assert not Subscriber.objects.filter(email="gone@example.com").exists()


def test_existing_subscribers_are_updated_or_left_alone(topics):
    SubscriberFactory(email="a@example.com", first_name="Old")
    SubscriberFactory(email="b@example.com", first_name="Same")
    job = run_import(b"email,first_name\na@example.com,New\nb@example.com,Same\n")
    assert (job.created, job.updated, job.unchanged) == (0, 1, 1)
    assert Subscriber.objects.get(email="a@example.com").first_name == "New"
    job = run_import(b"email,first_name\na@example.com,Newer\n", update_existing=False)
    assert (job.updated, job.unchanged) == (0, 1)
    assert Subscriber.objects.get(email="a@example.com").first_name == "New"


def test_confirmed_imports_record_consent_and_add_topics(topics):
    weekly, product, _ = topics
    job = run_import(
        b"email\na@example.com\nb@example.com\n",
        topics=[weekly.pk, product.pk],
        confirmed=True,
        consent_note="Signed up at the 2024 fair",
    )
    assert job.created == 2
    a = Subscriber.objects.get(email="a@example.com")
    assert a.status == Subscriber.Status.ACTIVE and a.confirmed_at
    assert Subscription.objects.filter(subscriber=a).count() == 2
    record = ConsentRecord.objects.get(subscriber=a)
    assert (record.text, record.where) == ("Signed up at the 2024 fair", "import")


def test_a_topic_an_existing_subscriber_left_is_not_forced_back(topics):
    weekly = topics[0]
    a = SubscriberFactory(email="a@example.com")
    SubscriptionFactory(subscriber=a, topic=weekly, status="unsubscribed")
    job = run_import(b"email\na@example.com\n", topics=[weekly.pk])
    assert job.unchanged == 1
    assert Subscription.objects.get(subscriber=a).status == "unsubscribed"


def test_an_updated_subscriber_gains_the_new_topics_and_keeps_the_ones_held(topics):
    weekly, product, _ = topics
    a = SubscriberFactory(email="a@example.com", first_name="Old")
    SubscriptionFactory(subscriber=a, topic=weekly, status="unsubscribed")
    job = run_import(
        b"email,first_name\na@example.com,New\nb@example.com,Bea\n",
        topics=[weekly.pk, product.pk],
    )
    assert (job.created, job.updated) == (1, 1)
    held = dict(Subscription.objects.filter(subscriber=a).values_list("topic_id", "status"))
    assert held == {weekly.pk: "unsubscribed", product.pk: "active"}
    b = Subscriber.objects.get(email="b@example.com")
    assert Subscription.objects.filter(subscriber=b, status="active").count() == 2


def test_the_summary_keeps_the_seconds_of_each_phase(topics):
    job = run_import(
        b"email\na@example.com\nnot-an-address\n",
        topics=[topics[0].pk],
        confirmed=True,
        consent_note="At the fair",
    )
    phases = job.phase_seconds
    assert set(phases) == {
        "parse_validate",
        "wait_for_parser",
        "copy",
        "dedup_suppressed",
        "merge_subscribers",
        "subscriptions",
        "consent_records",
        "rejections",
        "commit",
    }
    assert all(seconds >= 0 for seconds in phases.values())
    assert phases["merge_subscribers"] > 0  # (a two-row COPY may round to 0.000)


def test_the_management_command_prints_the_summary(topics, tmp_path, capsys):
    path = tmp_path / "in.csv"
    path.write_bytes(b"email\none@example.com\nbroken\n")
    call_command("import_subscribers", str(path), "--topic", "weekly", "--confirmed")
    out = capsys.readouterr().out
    assert "created:    1" in out and "rejected:   1" in out and "line 3" in out
    assert Subscription.objects.filter(topic=topics[0]).count() == 1


def test_the_mapping_is_guessed_from_the_header_including_custom_fields(custom_fields):
    from subscribers.importing import mapping_guess

    fields = list(custom_fields.values())
    mapping = mapping_guess(["E-mail", "First_Name", "Surname", "Company", "score", "misc"], fields)
    assert mapping == {
        "0": "email",
        "1": "first_name",
        "2": "last_name",
        "3": "attr:company",
        "4": "attr:score",
        "5": "ignore",
    }


def test_an_over_long_custom_text_value_is_rejected(custom_fields):
    job = run_import(("email,company\na@example.com," + "x" * 1001 + "\n").encode())
    assert "longer than 1000" in rejections(job)[2]


def test_a_failure_half_way_imports_nothing_and_says_so(db, monkeypatch):
    import subscribers.importing as importing

    monkeypatch.setattr(importing, "CHUNK_ROWS", 2)
    original = importing._merge_chunk
    calls = []

    def merge_then_fail(cursor, job, params, *rest):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return original(cursor, job, params, *rest)

    monkeypatch.setattr(importing, "_merge_chunk", merge_then_fail)
    rows = b"email\n" + b"".join(f"u{i}@example.com\n".encode() for i in range(6))
    with pytest.raises(RuntimeError):
        run_import(rows)
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED and "disk full" in job.error
    assert Subscriber.objects.count() == 0 and job.rejections.count() == 0


def test_duplicates_across_chunks_are_reported_with_the_first_line(db, monkeypatch):
    import subscribers.importing as importing

    monkeypatch.setattr(importing, "CHUNK_ROWS", 2)
    job = run_import(b"email\na@example.com\nb@example.com\nc@example.com\nA@example.com\n")
    assert job.created == 3
    assert rejections(job) == {5: "duplicate of line 2"}


def test_a_job_already_running_elsewhere_is_not_imported_twice(db):
    import psycopg
    from django.db import connection

    from subscribers.importing import LOCK_CLASS

    job = import_job_create(file=ContentFile(b"email\na@example.com\n"), name="x.csv")
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.QUEUED)
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_CLASS, job.pk])
        job = import_run(job=job)
    assert job.status == ImportJob.Status.QUEUED
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_rejected_record_over_several_lines_is_reported_at_its_first_line(
    custom_fields, admin_client, newline
):
    from django.urls import reverse

    rows = [
        "email,first_name,score,plan",  # 1
        "good@example.com,Good,1,free",  # 2
        'not-an-address,"two{nl}lines",1,free',  # 3-4
        "a..b@example.com,Dots,1,free",  # 5
        'wide@example.com,"three{nl}physical{nl}lines",1,free,surprise',  # 6-8
        'multi@example.com,"kept{nl}over two",2,pro',  # 9-10
        'MULTI@example.com,"again{nl}and again",2,pro',  # 11-12: duplicate of line 9
        "nan@example.com,N,abc,free",  # 13
    ]
    data = newline.join(rows).format(nl=newline) + newline
    job = run_import(data.encode())
    assert job.status == ImportJob.Status.DONE, job.error
    reasons = rejections(job)
    assert set(reasons) == {3, 5, 6, 11, 13}
    assert "not a valid email" in reasons[3]
    assert "5 columns" in reasons[6]
    assert reasons[11] == "duplicate of line 9"
    assert "not a number" in reasons[13]
    # As the marketer downloads them from the import's page.
    response = admin_client.get(reverse("subscribers:import_rejections", args=[job.pk]))
    import csv
    import io

    download = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row[0] for row in download] == ["line", "3", "5", "6", "11", "13"]
    assert download[1][2] == f"not-an-address,two{newline}lines,1,free"
