import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from unittest import mock

import pytest
import redis

from analytics import buffer, ingest
from analytics.models import CampaignStats, Event
from analytics.tasks import tracking_flush
from analytics.tracking import click_token, open_token
from analytics.tracking_views import PIXEL
from tests.support.factories import create_sent_campaign
from tests.support.workers import ROOT, worker_env

CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"


def _hits(deliveries, links, n):
    for i in range(n):
        d = deliveries[i % len(deliveries)]
        if i % 2:
            yield f"/t/o/{open_token(d.pk)}"
        else:
            yield f"/t/c/{click_token(d.pk, links[i % 2].pk)}"


def test_a_flush_writes_every_buffered_hit_once(client, sent_campaign):
    _campaign, links, deliveries = sent_campaign
    for url in _hits(deliveries, links, 40):
        client.get(url, HTTP_USER_AGENT=CHROME)
    assert buffer.pending() == 40
    assert buffer.flush() == 40
    assert Event.objects.count() == 40 and buffer.pending() == 0
    assert buffer.flush() == 0
    assert Event.objects.count() == 40


def test_a_flusher_that_dies_mid_flush_loses_nothing(client, sent_campaign):
    _, links, deliveries = sent_campaign
    for url in _hits(deliveries, links, 10):
        client.get(url, HTTP_USER_AGENT=CHROME)
    with (
        mock.patch("analytics.ingest.ingest_facts", side_effect=RuntimeError("killed")),
        pytest.raises(RuntimeError),
    ):
        buffer.flush()
    # The moved batch waits in the processing list; the lock expires or is released.
    assert buffer.client().llen(buffer.PROCESSING_KEY) == 10
    assert Event.objects.count() == 0
    client.get(f"/t/o/{open_token(deliveries[0].pk)}", HTTP_USER_AGENT=CHROME)
    assert buffer.flush() == 11
    assert Event.objects.count() == 11


def test_a_batch_ingested_twice_counts_once(client, sent_campaign):
    """The flusher died after its commit but before deleting the processing list."""
    campaign, links, deliveries = sent_campaign
    for url in _hits(deliveries, links, 6):
        client.get(url, HTTP_USER_AGENT=CHROME)
    r = buffer.client()
    r.eval(buffer._MOVE, 2, buffer.BUFFER_KEY, buffer.PROCESSING_KEY, 100)
    ingest.ingest_hits([json.loads(x) for x in r.lrange(buffer.PROCESSING_KEY, 0, -1)])
    stats_before = CampaignStats.objects.get(campaign=campaign)
    assert buffer.flush() == 6
    assert Event.objects.count() == 6
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.opens, stats.clicks) == (stats_before.opens, stats_before.clicks) == (3, 3)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gunicorn() -> tuple[int, subprocess.Popen]:
    """One sync gunicorn worker serving the app, ready to answer."""
    port = _free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "nofailmail.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"],
        cwd=ROOT,
        env=worker_env(DEBUG="True"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/t/ping.gif", timeout=1)
            return port, web
        except OSError:
            if time.monotonic() > deadline:
                os.killpg(web.pid, signal.SIGKILL)
                raise
            time.sleep(0.2)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_no_byte_of_the_response_leaves_before_redis_has_the_hit():
    """The RPUSH is sent before the response is built and acknowledged as its first byte goes
    out: while Redis holds writes back, the client receives nothing, not even the status."""

    _campaign, _links, deliveries = create_sent_campaign()
    port, web = _gunicorn()
    try:
        buffer.client().client_pause(1500, all=False)  # writes wait 1.5 s; reads go on
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(
                f"GET /t/o/{open_token(deliveries[0].pk)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"User-Agent: {CHROME}\r\nConnection: close\r\n\r\n".encode()
            )
            conn.settimeout(0.8)
            with pytest.raises(TimeoutError):
                conn.recv(1)
            assert buffer.pending() == 0
            conn.settimeout(5)
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
        assert answer.endswith(PIXEL)
        assert buffer.pending() == 1
    finally:
        buffer.client().client_unpause()
        os.killpg(web.pid, signal.SIGKILL)
        web.wait(timeout=10)


@pytest.mark.worker
# serialized_rollback: the flush after this test must not re-create content types that
# the next serialized_rollback test restores itself (duplicate keys otherwise).
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_hits_answered_by_a_killed_web_process_are_written_by_the_worker(worker_process):
    """gunicorn answers, is SIGKILLed; the real Celery worker's flush still writes every hit."""

    campaign, links, deliveries = create_sent_campaign()
    port, web = _gunicorn()
    try:
        urls = list(_hits(deliveries, links, 20))
        opener = urllib.request.build_opener(_NoRedirect)
        for url in urls:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}{url}", headers={"User-Agent": CHROME}
            )
            response = opener.open(request, timeout=5)
            assert response.status in (200, 302)
    finally:
        os.killpg(web.pid, signal.SIGKILL)
        web.wait(timeout=10)
    assert Event.objects.count() == 0  # nothing written on the request path
    tracking_flush.delay()
    deadline = time.monotonic() + 30
    while Event.objects.count() < 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert Event.objects.count() == 20
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.opens, stats.clicks) == (10, 10)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

    def http_error_302(self, req, fp, code, msg, headers):
        return fp


def test_junk_in_a_hit_does_not_poison_the_batch(client, sent_campaign):
    _, _, deliveries = sent_campaign
    client.get(
        f"/t/o/{open_token(deliveries[0].pk)}",
        HTTP_USER_AGENT="nul\x00byte Chrome/1",
        HTTP_X_FORWARDED_FOR="unknown",
    )
    buffer.client().rpush(buffer.BUFFER_KEY, b"{not json", json.dumps({"k": "o"}))
    client.get(
        f"/t/o/{open_token(deliveries[1].pk)}", HTTP_USER_AGENT=CHROME, REMOTE_ADDR="not-an-ip"
    )
    assert buffer.flush() == 4
    assert Event.objects.count() == 2
    assert set(Event.objects.values_list("ip", flat=True)) == {"127.0.0.1", None}


def _redis_drops_our_connections() -> None:
    """Redis closes every client connection on this suite's database (a restart or a failover
    looks the same); never those of other suites sharing the server on other databases."""
    r = buffer.client()
    db = int(r.connection_pool.connection_kwargs.get("db", 0))
    # The killing is done from a connection of its own, which is spared: killing the one it
    # speaks through made the next CLIENT KILL read a reset (the order of CLIENT LIST decides
    # whether that connection comes last), failing this test about one run in twenty.
    with redis.Redis(
        connection_pool=redis.ConnectionPool(**r.connection_pool.connection_kwargs)
    ) as killer:
        me = killer.client_id()
        for c in killer.client_list(_type="normal"):
            if int(c.get("db", -1)) == db and int(c["id"]) != me:
                killer.client_kill_filter(_id=c["id"], skipme=True)


def test_a_hit_survives_redis_dropping_the_web_process_connection(client, sent_campaign):
    _, links, deliveries = sent_campaign
    urls = list(_hits(deliveries, links, 2))
    client.get(urls[0], HTTP_USER_AGENT=CHROME).getvalue()
    _redis_drops_our_connections()
    response = client.get(urls[1], HTTP_USER_AGENT=CHROME)
    assert response.status_code in (200, 302)
    response.getvalue()
    assert buffer.pending() == 2
    assert buffer.flush() == 2


def test_a_response_nobody_read_still_has_its_hit_confirmed_before_the_next(client, sent_campaign):
    """A client that leaves before its response is written leaves an acknowledgement unread:
    the next hit on that connection reads it first, and if Redis dropped the connection in
    between, sends the unconfirmed hit again (ingestion counts it once)."""
    _, links, deliveries = sent_campaign
    urls = list(_hits(deliveries, links, 3))
    client.get(urls[0], HTTP_USER_AGENT=CHROME)  # body never read: no confirmation
    client.get(urls[1], HTTP_USER_AGENT=CHROME)  # confirms the first, sends the second
    _redis_drops_our_connections()
    client.get(urls[2], HTTP_USER_AGENT=CHROME).getvalue()
    assert 3 <= buffer.pending() <= 4  # the second may be in twice
    buffer.flush()
    assert Event.objects.count() == 3
    assert len(set(Event.objects.values_list("uid", flat=True))) == 3
