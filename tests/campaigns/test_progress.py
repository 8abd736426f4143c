"""Watching a send: counters kept by the ledger's trigger, a poll that never scans the ledger,
and a campaign page that follows "Send now" to "Finished" by itself."""

import threading
import time
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.dispatch import dispatch_due
from campaigns.models import Campaign, Delivery, DeliveryCount
from campaigns.pipeline import campaign_send_work, reconcile
from campaigns.selectors import delivery_counts
from campaigns.services import campaign_start, delivery_resolve_unknown
from tests.support.browser import launch
from tests.support.factories import CampaignFactory, SendingConnectionFactory, make_audience
from tests.support.sending import QUEUE, TTL, forget_campaign_keys
from tests.support.workers import Worker


def _ledger(campaign) -> dict[str, int]:
    return dict(
        Counter(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True))
    )


def test_the_counters_follow_every_change_of_the_ledger(db, smtp_sink):
    topic, _subs = make_audience(30)
    make_audience(2, topic=topic, prefix="bad")
    make_audience(2, topic=topic, prefix="busy")
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    assert delivery_counts([campaign.pk])[campaign.pk] == {"pending": 34}
    campaign_send_work(campaign_id=campaign.pk)  # sent, failed, retried (pending)
    assert delivery_counts([campaign.pk])[campaign.pk] == _ledger(campaign)
    assert _ledger(campaign) == {"sent": 30, "failed": 2, "pending": 2}

    rows = list(Delivery.objects.filter(campaign=campaign, status="sent").order_by("id")[:3])
    Delivery.objects.filter(pk=rows[0].pk).update(status="sending", claim_token="gone")
    Delivery.objects.filter(pk=rows[1].pk).update(status="claimed", claim_token="gone")
    reconcile(campaign_id=campaign.pk)  # sending -> unknown, claimed -> pending
    assert delivery_counts([campaign.pk])[campaign.pk] == _ledger(campaign)
    delivery_resolve_unknown(campaign=campaign, resend=False)
    rows[2].delete()
    assert delivery_counts([campaign.pk])[campaign.pk] == _ledger(campaign)
    assert _ledger(campaign)["sent"] == 28  # one given back to pending, one deleted


def test_the_poll_reads_a_few_counter_rows_and_never_the_ledger(db, viewer_client, smtp_sink):
    topic, _ = make_audience(50)
    campaign = CampaignFactory(topic=topic, connection=SendingConnectionFactory(sink=smtp_sink))
    campaign_start(campaign=campaign)
    campaign_send_work(campaign_id=campaign.pk, time_budget=0.0)
    with CaptureQueriesContext(connection) as queries:
        response = viewer_client.get(f"/campaigns/{campaign.pk}/progress/?seen=running")
    assert response.status_code == 200
    assert "50" in response.content.decode()
    statements = [q["sql"] for q in queries.captured_queries]
    assert not any('FROM "campaigns_delivery"' in sql for sql in statements), statements
    assert len(statements) <= 6, statements
    # The campaign list too: one counters query for every listed campaign.
    with CaptureQueriesContext(connection) as queries:
        assert viewer_client.get("/campaigns/").status_code == 200
    assert not any('FROM "campaigns_delivery"' in q["sql"] for q in queries.captured_queries)
    assert DeliveryCount.objects.filter(campaign=campaign).exists()


def test_a_changed_state_reloads_the_page_so_its_actions_match(db, viewer_client):
    topic, _ = make_audience(2)
    campaign = CampaignFactory(topic=topic)
    campaign_start(campaign=campaign)
    response = viewer_client.get(f"/campaigns/{campaign.pk}/progress/?seen=scheduled")
    assert response["HX-Refresh"] == "true"
    response = viewer_client.get(f"/campaigns/{campaign.pk}/progress/?seen=running")
    assert "HX-Refresh" not in response


class _Beat:
    """What django-celery-beat does every few seconds: the dispatcher, in a thread."""

    def __init__(self, every=0.5):
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            while not self._stop.wait(self.every):
                dispatch_due()
        finally:
            connection.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


@pytest.mark.browser
@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_send_now_is_followed_to_finished_without_a_reload(
    live_server, editor_user, smtp_sink, own_queue, monkeypatch
):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    smtp_sink.delay = 0.02
    topic, _ = make_audience(150)
    campaign = CampaignFactory(
        topic=topic, connection=SendingConnectionFactory(sink=smtp_sink, rate_per_second=25)
    )
    forget_campaign_keys(campaign.pk)
    worker = Worker(concurrency=1, CELERY_QUEUE=QUEUE, CAMPAIGN_CLAIM_TTL=TTL)
    try:
        worker.wait_ready()
        with sync_playwright() as p, _Beat():
            browser = launch(p)
            page = browser.new_page()
            page.goto(f"{live_server.url}/login/")
            page.fill("input[name=username]", editor_user.username)
            page.fill("input[name=password]", "pw-" + editor_user.username)
            page.click("button[type=submit], input[type=submit]")
            page.wait_for_url(f"{live_server.url}/**")
            page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
            page.select_option("select[name=kind]", "now")
            page.click("button:has-text('Schedule')")
            seen = set()
            deadline = time.monotonic() + 60
            sent_figures = []
            while time.monotonic() < deadline:
                status = page.text_content("#status")
                seen.add(status)
                if page.locator("[data-testid=sent]").count():
                    sent_figures.append(int(page.text_content("[data-testid=sent]")))
                if status == "Finished":
                    break
                time.sleep(0.2)
            final = page.inner_text("#progress")
            browser.close()
    finally:
        worker.stop()
    assert Campaign.objects.get(pk=campaign.pk).status == "finished"
    assert {"Running", "Finished"} <= seen, seen
    assert "150 sent / 150" in final
    # The figure moved while the page stayed open (not only at the end).
    assert len({n for n in sent_figures if 0 < n < 150}) >= 2, sent_figures
