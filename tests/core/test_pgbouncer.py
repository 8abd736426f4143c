"""Behind PgBouncer in transaction mode: imports, sending, tracking ingestion and the dispatcher.

A private PgBouncer (Debian's ``pgbouncer``; `.ci/run` installs it) pools four server
connections and hands them out in turn (``server_round_robin``), so consecutive transactions
of one client run on different server connections, as they do under load in production. Any
state a statement leaves on its session (a session advisory lock, a ``SET`` without
``LOCAL``, a TEMP table or a cursor kept across transactions) then shows up on the wrong
connection or stays behind for somebody else.

The test process's connection goes through it, and the real Celery workers reach PostgreSQL
only through it: their ``DATABASE_URL`` (the "direct" alias) points at a closed port.
"""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from analytics import buffer
from analytics.models import CampaignStats, Event
from analytics.tasks import tracking_flush
from analytics.tracking import click_token, open_token
from campaigns.models import Campaign, Delivery
from campaigns.tasks import campaigns_dispatch
from nofailmail.celery import app as celery_app
from subscribers.importing import import_job_create
from subscribers.models import ImportJob, Subscription
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    TopicFactory,
    create_sent_campaign,
    make_audience,
)
from tests.support.sending import TTL, forget_campaign_keys
from tests.support.workers import ROOT, Worker, purge_queue

PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
SERVERS = 4  # server connections in the pool, each used in turn
QUEUE = "pgbouncer-test"  # our worker's own queue: the session's shared worker connects directly
CHROME = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgBouncer:
    """A private pgbouncer in transaction mode, started as a daemon from its own directory."""

    def __init__(self):
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="nfm-pgbouncer-"))
        db = connection.settings_dict
        self.user = db["USER"] or "postgres"
        (self.dir / "userlist.txt").write_text(f'"{self.user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={db['HOST'] or '127.0.0.1'} port={db['PORT'] or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir / 'userlist.txt'}\n"
            f"admin_users = {self.user}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {SERVERS}\nmax_client_conn = 200\n"
            # FIFO instead of LIFO: a lone client's next transaction takes another server.
            "server_round_robin = 1\n"
            f"logfile = {self.dir / 'pgbouncer.log'}\npidfile = {self.dir / 'pgbouncer.pid'}\n"
        )

    def start(self) -> "PgBouncer":
        command = [PGBOUNCER, "-d"]
        if os.geteuid() == 0:  # pgbouncer refuses to run as root
            runner = "postgres" if _user_exists("postgres") else "nobody"
            shutil.chown(self.dir, runner)
            for path in self.dir.iterdir():
                shutil.chown(path, runner)
            command += ["-u", runner]
        subprocess.run([*command, str(self.dir / "pgbouncer.ini")], check=True, timeout=30)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start:\n{self.log()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        pidfile = self.dir / "pgbouncer.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def url(self, dbname: str) -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname=dbname, prepare_threshold=None
        )

    def fill(self, dbname: str) -> None:
        """Open every server connection of the pool, so that round robin has some to turn."""
        clients = [self.connect(dbname) for _ in range(SERVERS)]
        try:
            for client in clients:
                client.execute("SELECT 1")  # each holds a server connection in its transaction
            for client in clients:
                client.commit()
        finally:
            for client in clients:
                client.close()

    def each_server(self, dbname: str, sql: str) -> list:
        """``sql``'s first value on every server connection of the pool: as many clients as
        servers, each holding one in an open transaction."""
        clients = [self.connect(dbname) for _ in range(SERVERS)]
        try:
            values = [client.execute(sql).fetchone()[0] for client in clients]
            pids = {client.execute("SELECT pg_backend_pid()").fetchone()[0] for client in clients}
            assert len(pids) == SERVERS, "not every server connection was reached"
            return values
        finally:
            for client in clients:
                client.close()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture(scope="module")
def pgbouncer(django_db_setup):
    if PGBOUNCER is None:
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer; .ci/run does)")
    bouncer = PgBouncer().start()
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture(scope="module")
def pooled_worker(pgbouncer, django_db_blocker):
    """A real worker whose only way to PostgreSQL is the pooler."""
    dbname = connection.settings_dict["NAME"]
    with django_db_blocker.unblock():
        purge_queue()
        worker = Worker(
            concurrency=2,
            CELERY_QUEUE=QUEUE,
            CAMPAIGN_CLAIM_TTL=TTL,
            DATABASE_POOLED_URL=pgbouncer.url(dbname),
            # Nothing listens there: a direct connection would fail the task.
            DATABASE_URL=f"postgres://{pgbouncer.user}@127.0.0.1:{_free_port()}/{dbname}",
        )
        previous = celery_app.conf.task_default_queue
        celery_app.conf.task_default_queue = QUEUE
        try:
            worker.wait_ready()
            yield worker
        finally:
            celery_app.conf.task_default_queue = previous
            worker.stop()


@pytest.fixture
def pooled(pgbouncer, pooled_worker, transactional_db):
    """The test process's own connection through the pooler too, set as DATABASE_POOLED_URL
    sets it (settings.py); every server connection open; afterwards, none left with a session
    advisory lock or a session setting."""
    dbname = connection.settings_dict["NAME"]
    changed = ("HOST", "PORT", "OPTIONS", "DISABLE_SERVER_SIDE_CURSORS")
    saved = {
        key: connection.settings_dict[key] for key in changed if key in connection.settings_dict
    }
    connection.close()
    connection.settings_dict.update(
        HOST="127.0.0.1",
        PORT=pgbouncer.port,
        OPTIONS={**connection.settings_dict.get("OPTIONS", {}), "prepare_threshold": None},
        DISABLE_SERVER_SIDE_CURSORS=True,
    )
    pgbouncer.fill(dbname)
    try:
        connection.ensure_connection()
        assert connection.connection.info.port == pgbouncer.port
        yield pgbouncer
        # What a transaction left on its session is seen by whoever gets that server next.
        assert pgbouncer.each_server(dbname, "SHOW synchronous_commit") == ["on"] * SERVERS
        locks = pgbouncer.each_server(
            dbname,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        assert locks == [0] * SERVERS, "an advisory lock was left behind on a server connection"
    finally:
        connection.close()
        for key in changed:
            connection.settings_dict.pop(key, None)
        connection.settings_dict.update(saved)


def _wait(condition, timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.worker
def test_a_dashboard_import_runs_in_a_worker_behind_pgbouncer(
    pooled, pooled_worker, role_groups, admin_client
):
    topic = TopicFactory(name="Weekly", slug="weekly")
    rows = ["Email,First name"] + [f"user{i}@example.com,User {i}" for i in range(120_000)]
    rows += ["broken,X", "user1@example.com,Again"]
    upload = SimpleUploadedFile("people.csv", "\n".join(rows).encode(), content_type="text/csv")
    response = admin_client.post(reverse("subscribers:import"), {"file": upload})
    assert response.status_code == 302
    job = ImportJob.objects.get()
    response = admin_client.post(
        reverse("subscribers:import_mapping", args=[job.pk]),
        {
            "col_0": "email",
            "col_1": "first_name",
            "topics": [topic.pk],
            "confirmed": "yes",
            "consent_note": "Met at the conference",
            "update_existing": "yes",
        },
    )
    assert response.status_code == 302

    def finished():
        job.refresh_from_db()
        return job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED)

    _wait(finished, 120, "the import")
    assert job.status == ImportJob.Status.DONE, job.error or pooled_worker.output()
    assert (job.created, job.rejected) == (120_000, 2)  # three chunks in one transaction
    assert Subscription.objects.filter(topic=topic).count() == 120_000
    # The rejections download pages through the pooler (no server-side cursor).
    rejected = admin_client.get(reverse("subscribers:import_rejections", args=[job.pk]))
    text = b"".join(rejected.streaming_content).decode()
    assert "120002," in text and "duplicate of line 3" in text
    # So does the list's export: 60 pages of 2,000, each row once.
    export = admin_client.get(reverse("subscribers:export"))
    lines = b"".join(export.streaming_content).decode().splitlines()
    emails = [line.split(",")[0] for line in lines[1:]]
    assert sorted(emails) == sorted(f"user{i}@example.com" for i in range(120_000))


@pytest.mark.worker
def test_a_stalled_import_is_seen_stalled_on_every_pooled_connection(pooled, editor_client):
    """The page probes the job's lock: a probe taken and released on two different server
    connections would leave it held, and the next probe would call the dead import alive."""
    job = import_job_create(file=ContentFile(b"email\nann@example.com\n"), name="list.csv")
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)
    for _ in range(SERVERS + 1):
        page = editor_client.get(reverse("subscribers:import_detail", args=[job.pk]))
        assert "This import stopped" in page.content.decode()


@pytest.mark.worker
def test_a_scheduled_campaign_is_dispatched_and_sent_by_a_worker_behind_pgbouncer(
    pooled, pooled_worker, smtp_sink
):
    topic, subscribers = make_audience(300)
    campaign = CampaignFactory(
        topic=topic, connection=SendingConnectionFactory(sink=smtp_sink), parallelism=2
    )
    forget_campaign_keys(campaign.pk)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=Campaign.Status.SCHEDULED, next_run_at=timezone.now()
    )
    campaigns_dispatch.delay()  # beat's tick, run by the worker

    def finished():
        campaign.refresh_from_db()
        return campaign.status == Campaign.Status.FINISHED

    _wait(finished, 120, "the campaign to be sent")
    received = Counter(m["To"] for m in smtp_sink.parsed())
    assert sorted(received) == sorted(s.email for s in subscribers)
    assert set(received.values()) == {1}
    assert Delivery.objects.filter(campaign=campaign, status="sent").count() == 300


@pytest.mark.worker
def test_tracking_hits_are_flushed_by_a_worker_behind_pgbouncer(pooled, client):
    campaign, links, deliveries = create_sent_campaign(n=6)
    buffer.client().delete(buffer.BUFFER_KEY, buffer.PROCESSING_KEY)
    for i in range(30):
        d = deliveries[i % len(deliveries)]
        url = f"/t/o/{open_token(d.pk)}" if i % 2 else f"/t/c/{click_token(d.pk, links[0].pk)}"
        assert client.get(url, HTTP_USER_AGENT=CHROME).status_code in (200, 302)
    assert buffer.pending() == 30
    tracking_flush.delay()  # beat's tick, run by the worker
    _wait(lambda: Event.objects.count() >= 30, 60, "the flush")
    assert Event.objects.count() == 30 and buffer.pending() == 0
    stats = CampaignStats.objects.get(campaign=campaign)
    assert (stats.opens, stats.clicks) == (15, 15)


def _settings(**env: str) -> subprocess.CompletedProcess:
    script = (
        "import json; from django.conf import settings; "
        "print(json.dumps({alias: {k: db.get(k) for k in ('PORT', 'OPTIONS', "
        "'DISABLE_SERVER_SIDE_CURSORS', 'CONN_MAX_AGE')} for alias, db in "
        "settings.DATABASES.items()}))"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", script],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_pooled_url_sends_every_connection_through_the_pooler_and_keeps_a_direct_alias():
    result = _settings(
        DATABASE_URL="postgres://app@127.0.0.1:5432/nfm?prepare_threshold=5",
        DATABASE_POOLED_URL="postgres://app@127.0.0.1:6432/nfm?prepare_threshold=5",
        DB_CONN_MAX_AGE="30",
    )
    assert result.returncode == 0, result.stderr
    databases = json.loads(result.stdout)
    assert databases["default"] == {
        "PORT": 6432,
        "OPTIONS": {"prepare_threshold": None},
        "DISABLE_SERVER_SIDE_CURSORS": True,
        "CONN_MAX_AGE": 30,
    }
    assert databases["direct"]["PORT"] == 5432
    assert databases["direct"]["OPTIONS"] == {"prepare_threshold": 5}
    assert not databases["direct"]["DISABLE_SERVER_SIDE_CURSORS"]


def test_without_a_pooled_url_there_is_one_direct_connection():
    result = _settings(DATABASE_URL="postgres://app@127.0.0.1:5432/nfm")
    assert result.returncode == 0, result.stderr
    assert list(json.loads(result.stdout)) == ["default"]


def test_a_pooled_url_that_is_not_postgresql_stops_startup_naming_it():
    result = _settings(
        DATABASE_URL="postgres://app@127.0.0.1:5432/nfm", DATABASE_POOLED_URL="sqlite:///x.db"
    )
    assert result.returncode != 0
    assert "DATABASE_POOLED_URL" in result.stderr
