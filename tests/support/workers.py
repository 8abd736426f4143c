"""Real Celery worker processes for tests, on the real Redis broker and the test database."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.core.cache import cache
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a worker that sees what the test process sees."""
    db = connection.settings_dict
    host = db["HOST"] or "127.0.0.1"
    if host.startswith("/"):  # a socket directory (make test's embedded PostgreSQL)
        host = quote(host, safe="")
    url = f"postgres://{db['USER']}@{host}:{db['PORT'] or 5432}/{db['NAME']}"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        DB_CONN_MAX_AGE="0",  # hold no connection that would stop the test database's drop
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        REDIS_URL=os.environ.get("REDIS_URL", settings.CELERY_BROKER_URL),
        DJANGO_SETTINGS_MODULE="nofailmail.settings",
        PYTHONUNBUFFERED="1",
        # Test workers may post webhooks to the tests' receivers on loopback (plain http).
        WEBHOOK_ALLOW_HTTP_LOOPBACK="True",
    )
    env.update(extra)
    return env


class _ProcessGroup:
    """A child process in a session of its own: kill() and stop() reach everything it forked
    (pool children, gunicorn workers), and its output goes to a log file."""

    def __init__(self, argv: list[str], *, name: str, kind: str, env: dict[str, str]):
        self.name = name
        self.log = Path(f"/tmp/nofailmail-{kind}-{self.name}.log")
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=worker_env(**env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so kill() reaches the children too
        )

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        """SIGKILL the whole group (main process and children): a crash, not a shutdown."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        # Children the main process had no time to reap would otherwise outlive it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def terminate(self) -> None:
        """Ask for a shutdown (SIGTERM to the group) without waiting for it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self, timeout: float = 30) -> None:
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)  # after that, the kill below
        self.kill()
        self._log_file.close()


class Worker(_ProcessGroup):
    def __init__(
        self,
        *,
        concurrency: int = 1,
        name: str | None = None,
        queues: list[str] | None = None,
        **env: str,
    ):
        """``queues``: every queue the app routes to (settings.CELERY_ALL_QUEUES) unless
        given; the default one is the worker's CELERY_QUEUE, else the test's default queue."""
        name = name or f"test-{uuid.uuid4().hex[:8]}"
        if queues is None:
            from nofailmail.celery import app

            queues = list(
                dict.fromkeys(
                    [
                        env.get("CELERY_QUEUE") or app.conf.task_default_queue,
                        *settings.CELERY_ALL_QUEUES[1:],
                    ]
                )
            )
        super().__init__(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "nofailmail",
                "worker",
                "--loglevel=info",
                f"--concurrency={concurrency}",
                "--pool=prefork",
                f"--hostname={name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-Q",
                ",".join(queues),
            ],
            name=name,
            kind="worker",
            env=env,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        from core.tasks import worker_ping

        token = uuid.uuid4().hex
        worker_ping.delay(token)
        deadline = time.monotonic() + timeout
        # The ping task proves some worker consumes the queue; a control ping addressed to
        # this one proves that *this* worker does (another one may have answered the task).
        from nofailmail.celery import app

        me = f"{self.name}@{socket.gethostname()}"
        answered = False
        while time.monotonic() < deadline:
            answered = answered or cache.get(f"worker-ping:{token}") == "pong"
            if answered and app.control.ping(destination=[me], timeout=0.5):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} did not start:\n{self.output()}")


class Beat(_ProcessGroup):
    """``celery beat`` with the project's scheduler (django-celery-beat's, in the database)."""

    def __init__(self, *, name: str | None = None, **env: str):
        super().__init__(
            [sys.executable, "-m", "celery", "-A", "nofailmail", "beat", "--loglevel=info"],
            name=name or uuid.uuid4().hex[:8],
            kind="beat",
            env=env,
        )

    def sent(self, task_name: str) -> int:
        """How many times this beat has sent the periodic task named ``task_name``."""
        return self.log.read_text(errors="replace").count(f"Sending due task {task_name} ")


class WebServer(_ProcessGroup):
    """The web process as deployed (gunicorn with deploy/gunicorn.conf.py) on ``port``."""

    def __init__(self, *, port: int, name: str | None = None, **env: str):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        super().__init__(
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"],
            name=name or str(port),
            kind="web",
            env={"GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1", **env},
        )

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"web {self.name} did not start:\n{self.output()}")


@contextlib.contextmanager
def own_queues(prefix: str) -> Iterator[dict[str, str]]:
    """Every queue the app routes to (the default one, the webhooks' and the transactional
    one), renamed for one test: the tasks this process sends go to them, and a ``Worker`` given
    the environment this yields consumes them, so that no other worker of the session (with
    another SITE_URL or mail server) takes them."""
    from nofailmail.celery import app

    suffix = uuid.uuid4().hex[:8]
    renamed = {
        settings.CELERY_TASK_DEFAULT_QUEUE: f"{prefix}-{suffix}",
        settings.CELERY_WEBHOOK_QUEUE: f"{prefix}-webhooks-{suffix}",
        settings.CELERY_TRANSACTIONAL_QUEUE: f"{prefix}-transactional-{suffix}",
    }
    routes = {
        pattern: {**route, "queue": renamed[route["queue"]]}
        for pattern, route in settings.CELERY_TASK_ROUTES.items()
    }
    before = (app.conf.task_default_queue, app.conf.task_routes)

    def route(default_queue: str, task_routes) -> None:
        app.conf.task_default_queue, app.conf.task_routes = default_queue, task_routes
        app.amqp.flush_routes()
        del app.amqp.router  # a cached property: built again from the routes on next use

    route(renamed[settings.CELERY_TASK_DEFAULT_QUEUE], routes)
    try:
        yield {
            "CELERY_QUEUE": renamed[settings.CELERY_TASK_DEFAULT_QUEUE],
            "CELERY_WEBHOOK_QUEUE": renamed[settings.CELERY_WEBHOOK_QUEUE],
            "CELERY_TRANSACTIONAL_QUEUE": renamed[settings.CELERY_TRANSACTIONAL_QUEUE],
        }
    finally:
        route(*before)


def purge_queue() -> None:
    from nofailmail.celery import app

    app.control.purge()
