"""ESP webhooks go through the tracking buffer: answered once Redis has the events, written by
the flusher in batches with the opens and clicks, so a burst of webhook calls is a handful of
transactions; without Redis, or when it fails, written before the answer; never a 2xx for an
event that is recorded nowhere."""

import contextlib
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import buffer, ingest
from analytics.models import CampaignStats, Event
from analytics.tasks import tracking_flush
from analytics.tracking import open_token
from subscribers.models import Subscriber, Suppression
from tests.analytics import esps
from tests.support.factories import create_sent_campaign

UNKNOWN = "smtp;550 5.1.1 The email account that you tried to reach does not exist."
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"


@pytest.fixture(autouse=True)
def _anymail(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, **esps.SETTINGS}


def _delivered(delivery) -> dict:
    """Postmark's documented delivery webhook."""
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": delivery.message_id.strip("<>"),
        "Recipient": delivery.email,
        "Tag": "",
        "DeliveredAt": esps.iso_now(),
        "Details": "Test delivery webhook details",
        "Metadata": {},
    }


def _hard_bounce(delivery) -> dict:
    return esps.bounce("postmark", delivery, variant="HardBounce", reply=UNKNOWN)


def _ingest_transactions(queries) -> int:
    """Each ingestion is one transaction that starts by taking ingestion's lock."""
    return sum("pg_advisory_xact_lock" in q["sql"] for q in queries)


@pytest.mark.parametrize(("batch", "transactions"), [(5000, 1), (25, 4)])
def test_a_burst_of_webhook_calls_is_written_in_a_handful_of_transactions(
    client, settings, db, batch, transactions
):
    settings.TRACKING_FLUSH_BATCH = batch
    campaign, _, deliveries = create_sent_campaign(n=60)
    for d in deliveries:
        assert esps.post(client, "postmark", _delivered(d), flush=False).status_code == 200
    for d in deliveries[:20]:
        assert esps.post(client, "postmark", _hard_bounce(d), flush=False).status_code == 200
    assert not Event.objects.exists()  # nothing written on the request path
    assert buffer.pending() == 80

    with CaptureQueriesContext(connection) as queries:
        assert buffer.flush() == 80
    assert _ingest_transactions(queries) == transactions
    assert Event.objects.values("received_at").distinct().count() == transactions

    assert Event.objects.filter(kind="delivered").count() == 60
    assert Event.objects.filter(kind="bounced", bounce_type="hard").count() == 20
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.delivered, stats.bounced_hard) == (60, 20)
    bounced = {d.email_hash for d in deliveries[:20]}
    assert set(Suppression.objects.values_list("email_hash", flat=True)) == bounced
    assert Subscriber.objects.filter(status="bounced").count() == 20
    assert buffer.pending() == 0


def test_an_esps_retry_of_a_buffered_event_counts_once(client, sent_campaign):
    campaign, _, deliveries = sent_campaign
    payload = _hard_bounce(deliveries[0])
    assert esps.post(client, "postmark", payload, flush=False).status_code == 200
    assert esps.post(client, "postmark", payload, flush=False).status_code == 200
    assert buffer.flush() == 2
    assert esps.post(client, "postmark", payload).status_code == 200  # after the flush
    assert Event.objects.count() == 1
    assert CampaignStats.objects.get(campaign=campaign).bounced_hard == 1


def test_a_bounce_is_not_queued_behind_a_backlog_of_opens(client, settings, sent_campaign):
    """Each batch takes the ESP's events first: the bounce suppresses at the next flush
    however many opens came before it."""
    settings.TRACKING_FLUSH_BATCH = 3
    _, _, deliveries = sent_campaign
    for _ in range(4):
        for d in deliveries:
            client.get(f"/t/o/{open_token(d.pk)}", HTTP_USER_AGENT=CHROME).getvalue()
    assert (
        esps.post(client, "postmark", _hard_bounce(deliveries[0]), flush=False).status_code == 200
    )

    with CaptureQueriesContext(connection) as queries:
        assert buffer.flush(max_batches=1) == 3
    assert _ingest_transactions(queries) == 1
    assert Suppression.objects.filter(email_hash=deliveries[0].email_hash).exists()
    assert buffer.flush() == 10
    assert Event.objects.filter(kind="opened").count() == 12


def test_hits_and_esp_events_share_the_flushs_transaction(client, sent_campaign):
    campaign, _, deliveries = sent_campaign
    client.get(f"/t/o/{open_token(deliveries[1].pk)}", HTTP_USER_AGENT=CHROME).getvalue()
    assert (
        esps.post(client, "postmark", _hard_bounce(deliveries[0]), flush=False).status_code == 200
    )
    with CaptureQueriesContext(connection) as queries:
        assert buffer.flush() == 2
    assert _ingest_transactions(queries) == 1
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.opens, stats.bounced_hard) == (1, 1)


def test_a_buffered_event_that_no_longer_reads_is_dropped_not_the_batch(client, sent_campaign):
    _, _, deliveries = sent_campaign
    r = buffer.client()
    r.rpush(buffer.FACTS_KEY, '{"f": {"uid": "x"}}', '{"f": 1}', "[]")
    assert (
        esps.post(client, "postmark", _hard_bounce(deliveries[0]), flush=False).status_code == 200
    )
    assert buffer.flush() == 4
    assert Event.objects.get().kind == "bounced"


def test_without_redis_the_event_is_written_before_the_answer(client, settings, sent_campaign):
    settings.TRACKING_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    _, _, deliveries = sent_campaign
    response = esps.post(client, "postmark", _hard_bounce(deliveries[0]), flush=False)
    assert response.status_code == 200
    assert Event.objects.get().bounce_type == "hard"
    assert Suppression.objects.filter(email_hash=deliveries[0].email_hash).exists()


class RedisFailingMidRequest:
    """A proxy to the real Redis that passes everything on, except that it drops the client's
    connection as it passes on an RPUSH: Redis stores the events, the client never hears so."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.real_url = url
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.server.getsockname()[1]}{parts.path}"
        self.rpushes = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._replies, args=(upstream, conn), daemon=True).start()
            threading.Thread(target=self._requests, args=(conn, upstream), daemon=True).start()

    def _replies(self, upstream: socket.socket, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                conn.sendall(data)

    def _requests(self, conn: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(1 << 20):
                if b"RPUSH" in data:
                    self.rpushes += 1
                    conn.close()  # before Redis can answer
                    upstream.sendall(data)
                    time.sleep(0.1)
                    break
                upstream.sendall(data)
        upstream.close()
        conn.close()


@pytest.fixture
def redis_failing(settings):
    proxy = RedisFailingMidRequest(settings.TRACKING_REDIS_URL)
    settings.TRACKING_REDIS_URL = proxy.url
    yield proxy
    proxy.close()


def test_redis_failing_mid_request_writes_the_event_before_the_answer(
    client, settings, sent_campaign, redis_failing
):
    campaign, _, deliveries = sent_campaign
    response = esps.post(client, "postmark", _hard_bounce(deliveries[0]), flush=False)
    assert 1 <= redis_failing.rpushes <= 2  # one retry at most, not seconds of them
    assert response.status_code == 200
    assert Event.objects.get().bounce_type == "hard"  # written on the request path
    assert Suppression.objects.filter(email_hash=deliveries[0].email_hash).exists()

    # Redis had the event all along: the flusher's copy is a replay, dropped.
    settings.TRACKING_REDIS_URL = redis_failing.real_url
    assert buffer.pending() >= 1
    buffer.flush()
    assert Event.objects.count() == 1
    assert CampaignStats.objects.get(campaign=campaign).bounced_hard == 1


@contextlib.contextmanager
def _ingestion_unavailable():
    """The database refuses ingestion: another session holds its lock, and this one gives up
    waiting after 300 ms (a database that does not answer looks the same to the view)."""
    dsn = connection.settings_dict
    with psycopg.connect(
        host=dsn["HOST"] or "127.0.0.1",
        port=dsn["PORT"] or 5432,
        user=dsn["USER"],
        dbname=dsn["NAME"],
        autocommit=True,
    ) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [ingest.LOCK_ID])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '300ms'")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = 0")
            holder.execute("SELECT pg_advisory_unlock(%s)", [ingest.LOCK_ID])


def test_redis_and_the_database_failing_answer_503_so_the_esp_retries(
    client, settings, sent_campaign, redis_failing
):
    campaign, _, deliveries = sent_campaign
    payload = _hard_bounce(deliveries[0])
    with _ingestion_unavailable():
        response = esps.post(client, "postmark", payload, flush=False)
    assert redis_failing.rpushes >= 1
    assert response.status_code == 503 and response["Retry-After"]
    assert not Event.objects.exists()

    # The ESP retries once things are back; with what Redis kept meanwhile, it counts once.
    settings.TRACKING_REDIS_URL = redis_failing.real_url
    assert esps.post(client, "postmark", payload).status_code == 200
    assert Event.objects.count() == 1
    assert CampaignStats.objects.get(campaign=campaign).bounced_hard == 1


def test_without_redis_a_database_failure_answers_503(client, settings, sent_campaign):
    settings.TRACKING_REDIS_URL = None
    _, _, deliveries = sent_campaign
    with _ingestion_unavailable():
        response = esps.post(client, "postmark", _hard_bounce(deliveries[0]))
    assert response.status_code == 503
    assert not Event.objects.exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_deployed_flusher_writes_a_burst_of_webhook_calls(client, settings, worker_process):
    """The real Celery worker's tracking_flush, as beat runs it, writes what the endpoint
    buffered: the events, the rollups, the suppressions, in one transaction."""
    campaign, _, deliveries = create_sent_campaign(n=40)
    for d in deliveries:
        assert esps.post(client, "postmark", _delivered(d), flush=False).status_code == 200
    for d in deliveries[:10]:
        assert esps.post(client, "postmark", _hard_bounce(d), flush=False).status_code == 200
    assert not Event.objects.exists()
    tracking_flush.delay()
    deadline = time.monotonic() + 60
    while Event.objects.count() < 50 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert Event.objects.count() == 50
    assert Event.objects.values("received_at").distinct().count() == 1
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.delivered, stats.bounced_hard) == (40, 10)
    assert Suppression.objects.count() == 10
    assert Subscriber.objects.filter(status="bounced").count() == 10


def test_a_line_the_database_refuses_is_set_aside_not_retried_for_ever(client, sent_campaign):
    """One refused line (a bug's, an older release's) must not stop every later event."""
    _, _, deliveries = sent_campaign
    client.get(f"/t/o/{open_token(deliveries[1].pk)}", HTTP_USER_AGENT=CHROME).getvalue()
    assert (
        esps.post(client, "postmark", _hard_bounce(deliveries[0]), flush=False).status_code == 200
    )
    poison = {"uid": "x:1", "kind": "k" * 40, "occurred_at": "2026-12-01T10:00:00+00:00"}
    buffer.client().rpush(buffer.FACTS_KEY, json.dumps({"f": poison, "t": time.time()}))
    assert buffer.flush() == 3
    assert set(Event.objects.values_list("kind", flat=True)) == {"opened", "bounced"}
    assert buffer.pending() == 0
    refused = buffer.client().lrange(buffer.DEAD_KEY, 0, -1)
    assert [json.loads(line)["f"]["uid"] for line in refused] == ["x:1"]


def test_nan_in_an_esps_payload_is_stored_as_text(client, sent_campaign):
    _, _, deliveries = sent_campaign
    body = json.dumps(_hard_bounce(deliveries[0]))[:-1] + ', "Score": NaN}'
    assert esps.post(client, "postmark", body).status_code == 200
    assert Event.objects.get().payload["Score"] == "nan"
