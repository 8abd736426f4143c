import pytest

from tests.support.factories import CampaignFactory, DeliveryFactory

pytestmark = pytest.mark.django_db

STATUSES = ["sent", "pending", "failed", "sent", "skipped", "unknown", "sent"]


def test_the_ledger_page_walks_every_row_once_in_id_order_whatever_its_status(viewer_client):
    campaign = CampaignFactory(status="running")
    other = CampaignFactory(status="running")
    DeliveryFactory.create_batch(30, campaign=other, status="sent")
    ids = [
        DeliveryFactory(campaign=campaign, status=STATUSES[n % len(STATUSES)]).pk
        for n in range(230)
    ]
    url = f"/campaigns/{campaign.pk}/deliveries/"
    seen, after = [], None
    while True:
        response = viewer_client.get(url, {"after": after} if after else {})
        assert response.status_code == 200
        seen += [row.pk for row in response.context["rows"]]
        after = response.context["next_after"]
        if after is None:
            break
    assert seen == sorted(ids)
    failed = viewer_client.get(url, {"status": "failed"}).context["rows"]
    assert [row.pk for row in failed] == [
        pk for n, pk in enumerate(ids) if STATUSES[n % len(STATUSES)] == "failed"
    ]
