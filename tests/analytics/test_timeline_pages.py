import re
from datetime import timedelta

import factory
import pytest
from django.utils import timezone

from analytics.models import Event
from tests.support.factories import DeliveryFactory, EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_reader():
    """One delivery ten days ago and 150 opens of it, an hour apart, since."""
    sent = timezone.now() - timedelta(days=10)
    delivery = DeliveryFactory(status="sent", sent_at=sent)
    EventFactory.create_batch(
        150,
        delivery=delivery,
        kind=Event.Kind.OPENED,
        occurred_at=factory.Sequence(lambda n: sent + timedelta(hours=n + 1)),
    )
    return delivery.subscriber_id


def rows(body: str) -> list[str]:
    return re.findall(r'data-kind="(\w+)"', body)


def test_a_long_timeline_is_shown_a_page_at_a_time_newest_first(viewer_client, busy_reader):
    url = f"/analytics/subscribers/{busy_reader}/timeline/"
    first = viewer_client.get(url).content.decode()
    assert rows(first) == ["opened"] * 100
    older = re.search(r'href="([^"]+)" data-testid="timeline-older"', first)[1]
    second = viewer_client.get(older.replace("&amp;", "&")).content.decode()
    # The 50 older opens and, last, the delivery; nothing is shown twice or skipped.
    assert rows(second) == ["opened"] * 50 + ["sent"]
    assert "timeline-older" not in second and ">Newest</a>" in second
    shown = re.findall(r"(\d{4}-\d\d-\d\d \d\d:\d\d)</span>", first + second)
    assert len(set(shown)) == 151


def test_a_malformed_page_cursor_is_refused_with_a_clear_error(viewer_client, busy_reader):
    url = f"/analytics/subscribers/{busy_reader}/timeline/"
    for bad in ("yesterday", "2026-13-45T00:00:00+00:00", "2026-01-01T00:00:00"):
        response = viewer_client.get(url, {"before": bad})
        assert response.status_code == 400
        assert "before" in response.content.decode()
