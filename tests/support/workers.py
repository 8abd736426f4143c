"""Real Celery worker processes for tests, on the real Redis broker and the test database."""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a worker that sees what the test process sees."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
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


class Worker:
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
        self.name = name or f"test-{uuid.uuid4().hex[:8]}"
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
        self.log = Path(f"/tmp/nofailmail-worker-{self.name}.log")
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
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
                f"--hostname={self.name}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-Q",
                ",".join(queues),
            ],
            cwd=ROOT,
            env=worker_env(**env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so kill() reaches the pool children too
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

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-5000:]

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children): a crash, not a shutdown."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_file.close()


def purge_queue() -> None:
    from nofailmail.celery import app

    app.control.purge()
