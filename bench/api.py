"""The REST API under load: single-subscriber upserts through gunicorn, and bulk upserts.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/api.py   (make bench runs them all)

1. Makes an API key (its rate limit out of the way) in the database DATABASE_URL names
   (migrated first; the bench's own subscribers, bench-api-*@example.net, are deleted first).
2. Starts gunicorn with deploy/gunicorn.conf.py: 2 workers of its default kind (GUNICORN_THREADS
   threads each), DEBUG=False, no access log.
3. wrk POSTs /api/v1/subscribers/upsert for BENCH_SECONDS with BENCH_CONNECTIONS connections,
   a real `Authorization: Bearer` header and a JSON body: a new address for two requests in
   three, an update of an earlier one for the third (names, an attribute, a topic). Every
   request goes through the whole stack: key lookup, per-key rate limit in Redis, pydantic,
   the set-based upsert, the write log.
4. Bulk: BENCH_BULK_CALLS calls of POST /api/v1/subscribers/bulk with 10,000 subscribers each
   (new addresses, then the same ones again changed), over HTTP to the same gunicorn; the rate
   is subscribers per second of wall time, JSON encoding and the HTTP round trip included.
Targets: >= 800 upserts/s with p99 <= 50 ms; bulk >= 20,000 subscribers/s. The machine is
shared (2 cores, several agents at once), so figures vary between runs. Prints one JSON line.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
BULK_CALLS = int(os.environ.get("BENCH_BULK_CALLS", "6"))
BULK_SIZE = 10_000
ENV = {
    **os.environ,
    "DEBUG": "False",
    "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnop"),
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SITE_URL": "http://127.0.0.1",
    "SECURE_SSL_REDIRECT": "False",
    "LOG_LEVEL": "WARNING",
    "DJANGO_SETTINGS_MODULE": "nofailmail.settings",
    "DB_CONN_MAX_AGE": "600",
}


def _prepare() -> str:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=ENV,
        check=True,
    )
    os.environ.update(ENV)
    import django

    django.setup()
    from django.db import connection

    from api.keys import api_key_create
    from subscribers.models import CustomField, Subscriber, Topic

    Subscriber.objects.filter(email__startswith="bench-api-").delete()
    Topic.objects.get_or_create(slug="bench-api", defaults={"name": "Bench API"})
    CustomField.objects.get_or_create(key="bench_plan", defaults={"label": "Bench plan"})
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE subscribers_subscriber")
    return api_key_create(name="bench", scopes=["write"], rate_per_minute=10**9).token


LUA = """
local counter = 0
local thread_id = 0
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  thread_id = id
end
local headers = {
  ["Authorization"] = "Bearer %(token)s",
  ["Content-Type"] = "application/json",
}
request = function()
  counter = counter + 1
  local body
  if counter %% 3 == 0 then
    -- An update of an address this thread created earlier.
    local n = math.floor(counter / 3)
    body = string.format('{"email":"bench-api-%%d-%%d@example.net","first_name":"Ann",' ..
      '"last_name":"Lee%%d","attributes":{"bench_plan":"pro"},"topics":["bench-api"]}',
      thread_id, n, counter)
  else
    body = string.format('{"email":"bench-api-%%d-%%d@example.net","first_name":"Bo"}',
      thread_id, counter)
  end
  return wrk.format("POST", "/api/v1/subscribers/upsert", headers, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%%d,"duration_us":%%d,"p50_us":%%d,' ..
    '"p99_us":%%d,"socket_errors":%%d,"bad_status":%%d}\\n', summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (a negative pid: a PostgreSQL backend)."""
    pid = abs(pid)
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _serving_pids(web: subprocess.Popen) -> list[int]:
    """The gunicorn workers and the PostgreSQL backends serving this database (the bench's
    own connection aside, as negative numbers): what one request costs in CPU, whatever else
    the machine runs."""
    from django.db import connection

    children = Path(f"/proc/{web.pid}/task/{web.pid}/children").read_text().split()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        backends = [row[0] for row in cursor.fetchall()]
    return [int(pid) for pid in children] + [-pid for pid in backends]


def _cpu_spent(before: dict[int, float], now: list[int]) -> dict[int, float]:
    """CPU seconds each serving process spent since ``before`` (new ones: since they started;
    any that ended meanwhile are lost, which the workers and backends here never do)."""
    return {pid: _cpu_seconds(pid) - before.get(pid, 0.0) for pid in {*before, *now}}


def _gunicorn_threads() -> int:
    """The threads per worker deploy/gunicorn.conf.py gives (GUNICORN_THREADS or its default)."""
    config: dict = {}
    exec((ROOT / "deploy" / "gunicorn.conf.py").read_text(), config)  # noqa: S102 - our file
    return int(config["threads"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


def _post(url: str, token: str, body: bytes) -> dict:
    request = urllib.request.Request(  # noqa: S310 - loopback, http
        url,
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def _bulk(port: int, token: str) -> dict:
    url = f"http://127.0.0.1:{port}/api/v1/subscribers/bulk"
    rows_done, seconds, counts = 0, 0.0, {"created": 0, "updated": 0}
    for call in range(BULK_CALLS):
        base = (call // 2) * BULK_SIZE
        changed = call % 2  # every other call sends the same addresses again, changed
        rows = [
            {
                "email": f"bench-api-bulk-{base + i}@example.net",
                "first_name": f"P{i}",
                "last_name": "Changed" if changed else "",
                "attributes": {"bench_plan": "pro" if changed else "free"},
            }
            for i in range(BULK_SIZE)
        ]
        body = json.dumps({"subscribers": rows, "topics": ["bench-api"]}).encode()
        started = time.perf_counter()
        result = _post(url, token, body)
        seconds += time.perf_counter() - started
        rows_done += BULK_SIZE
        if result["rejected"]:
            raise RuntimeError(f"bulk rejected rows: {result['rejected'][:3]}")
        counts["created"] += result["created"]
        counts["updated"] += result["updated"]
    return {
        "bulk_subscribers": rows_done,
        "bulk_calls": BULK_CALLS,
        "bulk_created": counts["created"],
        "bulk_updated": counts["updated"],
        "bulk_subscribers_per_s": round(rows_done / seconds),
        "bulk_call_s": round(seconds / BULK_CALLS, 3),
    }


def main() -> None:
    token = _prepare()
    tmp = Path(tempfile.mkdtemp(prefix="nfm-bench-api-"))
    script = tmp / "upsert.lua"
    script.write_text(LUA % {"token": token})
    port = _free_port()
    web_env = {
        **ENV,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_MAX_REQUESTS": "0",
        "GUNICORN_ACCESSLOG": "",
    }
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"],
        cwd=ROOT,
        env=web_env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "web.err").open("w"),
        start_new_session=True,
    )
    try:
        _wait(port)
        # Warm up: imports, connections, prepared caches in both workers (every thread of
        # each: a threaded worker opens a database connection per thread).
        subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{CONNECTIONS}",
                "-d2s",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            check=True,
        )
        before = {pid: _cpu_seconds(pid) for pid in _serving_pids(web)}
        out = subprocess.run(
            [
                "wrk",
                f"-t{THREADS}",
                f"-c{CONNECTIONS}",
                f"-d{SECONDS}s",
                "--latency",
                "-s",
                str(script),
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        wrk = json.loads(re.search(r"WRKJSON (\{.*\})", out).group(1))
        # A threaded worker opens a connection (a backend) per thread as the threads first
        # serve: those that appeared during the run count from zero.
        spent = _cpu_spent(before, _serving_pids(web))
        cpu, db_cpu = sum(spent.values()), sum(v for pid, v in spent.items() if pid < 0)
        pids = _serving_pids(web)
        cpu_before = sum(_cpu_seconds(pid) for pid in pids)
        bulk = _bulk(port, token)
        bulk_cpu = sum(_cpu_seconds(pid) for pid in pids) - cpu_before
    finally:
        web.terminate()
        web.wait(timeout=30)
    from subscribers.models import Subscriber

    upserts = wrk["requests"]
    result = {
        "bench": "api",
        "upsert_requests": upserts,
        "upsert_rps": round(upserts / (wrk["duration_us"] / 1e6), 1),
        "upsert_p50_ms": round(wrk["p50_us"] / 1000, 2),
        "upsert_p99_ms": round(wrk["p99_us"] / 1000, 2),
        "upsert_errors": wrk["socket_errors"] + wrk["bad_status"],
        # gunicorn workers + their PostgreSQL backends: what an upsert costs on this machine
        # however loaded it is; 2 cores / this = the rate an idle 2-core machine would allow.
        "upsert_cpu_ms": round(cpu * 1000 / max(upserts, 1), 2),
        "upsert_cpu_ms_postgres": round(db_cpu * 1000 / max(upserts, 1), 2),
        "upsert_rps_if_2_idle_cores": round(2 / (cpu / max(upserts, 1))) if cpu else None,
        "connections": CONNECTIONS,
        "gunicorn_workers": 2,
        "gunicorn_threads": _gunicorn_threads(),
        **bulk,
        # One call runs on one worker and one backend, one after the other: rows / CPU is the
        # rate the same calls would reach with the machine to themselves.
        "bulk_cpu_s_per_10000": round(bulk_cpu / BULK_CALLS, 3),
        "bulk_subscribers_per_s_if_idle": round(bulk["bulk_subscribers"] / bulk_cpu)
        if bulk_cpu
        else None,
        "subscribers_in_db": Subscriber.objects.filter(email__startswith="bench-api-").count(),
        "target_upsert_rps": 800,
        "target_upsert_p99_ms": 50,
        "target_bulk_subscribers_per_s": 20_000,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
