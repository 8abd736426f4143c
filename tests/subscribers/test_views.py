import json

import pytest
from django.urls import reverse

from subscribers.models import CustomField, Segment, Subscriber, Subscription, Topic
from subscribers.services import is_suppressed, subscriber_create
from tests.support.factories import CustomFieldFactory, SegmentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def crowd(topics):
    return [
        subscriber_create(email=f"p{i:03d}@example.com", status="active", topics=topics[:1])
        for i in range(120)
    ]


def test_the_list_pages_by_keyset_without_counting(
    admin_client, crowd, django_assert_max_num_queries
):
    url = reverse("subscribers:list")
    response = admin_client.get(url)
    assert response.status_code == 200
    rows = response.context["rows"]
    assert rows[0].email == "p119@example.com" and len(rows) == 50
    older = response.context["older_url"]
    page2 = admin_client.get(url + older)
    assert page2.context["rows"][0].email == "p069@example.com"
    newer = page2.context["newer_url"]
    back = admin_client.get(url + newer)
    assert back.context["rows"][0].email == "p119@example.com"
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        admin_client.get(url + older)
    # The total is a bounded count (at most SUBSCRIBER_EXACT_COUNT_LIMIT rows), never COUNT(*)
    # of the whole list.
    counts = [q["sql"].upper() for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql for sql in counts)


def test_the_list_filters_by_search_status_topic_segment_and_attribute(admin_client, topics):
    CustomFieldFactory(key="plan", label="Plan", type="choice", choices=["free", "pro"])
    subscriber_create(email="ann@example.com", status="active", attributes={"plan": "pro"})
    subscriber_create(email="bob@example.com", topics=[topics[1]])
    segment = SegmentFactory(
        name="pro", rules={"match": "all", "conditions": [
            {"field": "attr.plan", "op": "eq", "value": "pro"}]}
    )  # fmt: skip
    url = reverse("subscribers:list")

    def shown(**params):
        return {s.email for s in admin_client.get(url, params).context["rows"]}

    assert shown(q="ann") == {"ann@example.com"}
    # A whole address is looked up through the unique index, whatever its case.
    subscriber_create(email="joann@example.com")
    assert shown(q="ann") == {"ann@example.com", "joann@example.com"}
    assert shown(q=" Ann@Example.com ") == {"ann@example.com"}
    assert shown(status="unconfirmed") == {"bob@example.com", "joann@example.com"}
    assert shown(topic="product") == {"bob@example.com"}
    assert shown(segment=segment.pk) == {"ann@example.com"}
    assert shown(attr="plan", attr_value="pro") == {"ann@example.com"}


def test_bulk_actions_apply_to_the_filtered_selection(admin_client, crowd, topics):
    events = topics[2]
    response = admin_client.post(
        reverse("subscribers:bulk"),
        {"q": "p00", "scope": "all", "action": "topic_add", "target_topic": events.pk},
    )
    assert response.status_code == 302
    assert Subscription.objects.filter(topic=events).count() == 10
    confirmed = {"scope": "all", "confirmed": "yes"}
    admin_client.post(reverse("subscribers:bulk"), {"q": "p001", "action": "suppress", **confirmed})
    assert is_suppressed("p001@example.com") and not is_suppressed("p002@example.com")
    admin_client.post(reverse("subscribers:bulk"), {"q": "p00", "action": "delete", **confirmed})
    assert Subscriber.objects.count() == 110


def test_an_editor_cannot_bulk_delete(editor_client, crowd):
    editor_client.post(
        reverse("subscribers:bulk"), {"action": "delete", "scope": "all", "confirmed": "yes"}
    )
    assert Subscriber.objects.count() == 120


def test_the_csv_export_streams_the_selection_with_attributes(editor_client, custom_fields):
    subscriber_create(email="ann@example.com", attributes={"company": "Acme"})
    subscriber_create(email="bob@example.com")
    response = editor_client.get(reverse("subscribers:export"), {"q": "ann"})
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    lines = text.strip().splitlines()
    assert lines[0].startswith("email,first_name") and "company" in lines[0]
    assert len(lines) == 2 and "Acme" in lines[1]


@pytest.mark.parametrize(
    ("name", "method", "args"),
    [
        ("import", "post", None),
        ("export", "get", None),
        ("bulk", "post", None),
        ("delete", "post", "subscriber"),
        ("erase", "post", "subscriber"),
        ("gdpr_export", "get", "subscriber"),
        ("create", "post", None),
        ("unsubscribe", "post", "subscriber"),
    ],
)
def test_a_viewer_cannot_import_export_or_delete(viewer_client, name, method, args):
    s = subscriber_create(email="ann@example.com")
    url = reverse(f"subscribers:{name}", args=[s.pk] if args else [])
    response = getattr(viewer_client, method)(url)
    assert response.status_code == 403
    assert Subscriber.objects.filter(email="ann@example.com", erased_at__isnull=True).exists()


def test_only_an_admin_erases_or_deletes(editor_client):
    s = subscriber_create(email="ann@example.com")
    assert editor_client.post(reverse("subscribers:erase", args=[s.pk])).status_code == 403
    assert editor_client.post(reverse("subscribers:delete", args=[s.pk])).status_code == 403


def test_the_detail_page_shows_subscriptions_consent_and_timeline(viewer_client, topics):
    s = subscriber_create(email="ann@example.com", topics=[topics[0]])
    from subscribers.services import consent_record

    consent_record(subscriber=s, text="Yes to news", version="v3", where="form")
    response = viewer_client.get(reverse("subscribers:detail", args=[s.pk]))
    body = response.content.decode()
    assert "Weekly" in body and "Yes to news" in body and "Joined" in body


def test_create_edit_unsubscribe_erase_and_delete_from_the_dashboard(admin_client, custom_fields):
    response = admin_client.post(
        reverse("subscribers:create"),
        {"email": "New@Example.com", "first_name": "New", "language": "en", "attr_score": "12"},
    )
    s = Subscriber.objects.get(email="new@example.com")
    assert response.status_code == 302 and s.attributes == {"score": 12}
    response = admin_client.post(
        reverse("subscribers:edit", args=[s.pk]),
        {"email": "new@example.com", "first_name": "Renamed", "language": "fr",
         "attr_score": "not a number"},
    )  # fmt: skip
    assert response.status_code == 200 and "not a number" in response.content.decode()
    admin_client.post(reverse("subscribers:unsubscribe", args=[s.pk]))
    s.refresh_from_db()
    assert s.status == "unsubscribed"
    data = json.loads(admin_client.get(reverse("subscribers:gdpr_export", args=[s.pk])).content)
    assert data["profile"]["email"] == "new@example.com"
    admin_client.post(reverse("subscribers:erase", args=[s.pk]))
    s.refresh_from_db()
    assert s.erased_at and s.email.startswith("erased-")
    admin_client.post(reverse("subscribers:delete", args=[s.pk]))
    assert not Subscriber.objects.exists()


def test_get_never_changes_state(admin_client):
    s = subscriber_create(email="ann@example.com")
    for name in ["unsubscribe", "delete", "erase"]:
        assert admin_client.get(reverse(f"subscribers:{name}", args=[s.pk])).status_code == 405
    s.refresh_from_db()
    assert s.status == "unconfirmed" and not s.erased_at


def test_segment_editor_saves_rules_and_counts_live(editor_client, topics):
    subscriber_create(email="ann@example.com", status="active", topics=[topics[0]])
    rules = {"match": "all", "conditions": [{"field": "topic", "op": "in", "value": "weekly"}]}
    count = editor_client.post(reverse("subscribers:segment_count"), {"rules": json.dumps(rules)})
    assert "<strong>1</strong>" in count.content.decode()
    bad = editor_client.post(
        reverse("subscribers:segment_count"),
        {"rules": json.dumps({"match": "all", "conditions": [{"field": "engagement"}]})},
    )
    assert "analytics" in bad.content.decode()
    assert editor_client.get(reverse("subscribers:segment_create")).status_code == 200
    response = editor_client.post(
        reverse("subscribers:segment_create"),
        {"name": "Weekly readers", "description": "", "rules": json.dumps(rules)},
    )
    assert response.status_code == 302
    assert Segment.objects.get().rules == rules


def test_an_editor_cannot_manage_topics(editor_client):
    assert editor_client.get(reverse("subscribers:topics")).status_code == 403


def test_settings_pages_manage_topics_and_custom_fields(admin_client):
    admin_client.post(
        reverse("subscribers:topics"),
        {"name": "Offers", "slug": "offers", "public_name": "Special offers", "description": ""},
    )
    assert Topic.objects.get(slug="offers").display_name == "Special offers"
    response = admin_client.post(
        reverse("subscribers:custom_fields"),
        {"key": "tier", "label": "Tier", "type": "choice", "choices_text": "gold\nsilver"},
    )
    assert response.status_code == 302
    assert CustomField.objects.get(key="tier").choices == ["gold", "silver"]
    assert "subscribers/topics" in admin_client.get(reverse("settings")).content.decode()


def test_every_dashboard_page_renders(admin_client, topics, custom_fields, settings, tmp_path):
    from django.core.files.base import ContentFile

    from subscribers.importing import import_job_create, import_run
    from subscribers.models import ImportJob

    settings.MEDIA_ROOT = tmp_path
    s = subscriber_create(email="ann@example.com", attributes={"company": "Acme"})
    segment = SegmentFactory(name="All", rules={"match": "all", "conditions": []})
    pending = import_job_create(file=ContentFile(b"email,plan\na@example.com,pro\n"), name="a.csv")
    done = import_job_create(file=ContentFile(b"email\nbad\nb@example.com\n"), name="b.csv")
    ImportJob.objects.filter(pk=done.pk).update(status=ImportJob.Status.QUEUED)
    import_run(job=done)
    urls = [
        reverse("subscribers:list"),
        reverse("subscribers:create"),
        reverse("subscribers:detail", args=[s.pk]),
        reverse("subscribers:edit", args=[s.pk]),
        reverse("subscribers:import"),
        reverse("subscribers:import_mapping", args=[pending.pk]),
        reverse("subscribers:import_detail", args=[done.pk]),
        reverse("subscribers:segments"),
        reverse("subscribers:segment_edit", args=[segment.pk]),
        reverse("subscribers:topics"),
        reverse("subscribers:topic_edit", args=[topics[0].pk]),
        reverse("subscribers:custom_fields"),
        reverse("subscribers:forms"),
    ]
    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
    detail = admin_client.get(reverse("subscribers:import_detail", args=[done.pk])).content
    assert b"not a valid email" in detail and b"Download the rejected rows" in detail
    mapping = admin_client.get(reverse("subscribers:import_mapping", args=[pending.pk])).content
    assert b'value="attr:plan" selected' in mapping


def test_a_viewer_sees_no_import_or_export_they_cannot_use(viewer_client, editor_user):
    subscriber_create(email="ann@example.com")
    import_url, export_url = reverse("subscribers:import"), reverse("subscribers:export")
    for url in (reverse("subscribers:list"), reverse("subscribers:segments")):
        page = viewer_client.get(url).content.decode()
        assert f'href="{import_url}"' not in page and f'href="{export_url}' not in page, url
    assert viewer_client.get(import_url).status_code == 403
    viewer_client.force_login(editor_user)
    page = viewer_client.get(reverse("subscribers:list")).content.decode()
    assert f'href="{import_url}"' in page and f'href="{export_url}' in page
