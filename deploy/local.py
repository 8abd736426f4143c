"""Run NoFailMail on one machine with no service installed: `make run` calls this.

With no DATABASE_URL, it starts an embedded PostgreSQL (the `pgserver` wheel: PostgreSQL's
own binaries, no install, no root) under var/postgres, so a newcomer gets the real database
and every feature (COPY imports, SKIP LOCKED sending). The broker
stays Celery's embedded filesystem transport. Then: migrate, demo data, and web + worker + beat
together (honcho). Ctrl-C stops everything, the database last.

    python deploy/local.py run        # the whole app
    python deploy/local.py shell      # manage.py shell against the same database
    python deploy/local.py manage ARGS
"""

import contextlib
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("VAR_DIR", ROOT / "var"))


def embedded_postgres(data: Path, database: str):
    """Start (or join) the embedded PostgreSQL whose files live in ``data`` and make sure
    ``database`` exists. Returns the server (its ``cleanup()`` stops it once no other process
    holds it) and a URL for it: a socket directory, no TCP port. As root, pgserver runs
    PostgreSQL as its own system user (initdb refuses root)."""
    try:
        with warnings.catch_warnings():
            # platformdirs, for pgserver's lock file: "XDG_RUNTIME_DIR is not set" (as root, or
            # in a container); it falls back to /tmp/runtime-UID, which serves.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError:
        # The app runs on PostgreSQL only (SQLite serves manage.py check and migrate).
        sys.exit(
            "pgserver is not installed (make install puts it in .venv): install it, or set "
            "DATABASE_URL to a PostgreSQL database."
        )
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", database):
        raise ValueError(f"{database!r}: a database name is letters, digits and underscores")
    data.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data, cleanup_mode="stop")
    # database is checked above: letters, digits and underscores only.
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")  # noqa: S608
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    socket_dir = server.get_postmaster_info().socket_dir or data
    return server, f"postgres://postgres@{quote(str(socket_dir), safe='')}/{database}"


def _embedded_postgres():
    data = VAR / "postgres"
    server, os.environ["DATABASE_URL"] = embedded_postgres(data, "nofailmail")
    print(f"Embedded PostgreSQL running in {data}", flush=True)
    return server


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "run"
    server = None
    if not os.environ.get("DATABASE_URL"):
        server = _embedded_postgres()
    try:
        if command == "shell":
            _manage("shell")
        elif command == "manage":
            _manage(*argv[1:])
        elif command == "run":
            _manage("migrate", "--noinput")
            _manage("createcachetable")
            _manage("seed_demo")
            honcho = Path(sys.executable).with_name("honcho")
            # Ctrl-C reaches honcho too, which stops its processes; then the database stops.
            with contextlib.suppress(KeyboardInterrupt):
                subprocess.run([str(honcho), "-f", "deploy/Procfile.dev", "start"], cwd=ROOT)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    finally:
        if server is not None:
            server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
