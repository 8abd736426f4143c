"""gunicorn settings for the web process (`gunicorn -c deploy/gunicorn.conf.py`)."""

import os

wsgi_app = "nofailmail.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# Every request is short (pages, the tracking pixel and redirect, API calls); slow work goes
# to Celery. But most of a request's time is spent waiting on PostgreSQL (a write waits for
# its commit to reach the disk) or Redis: a single-threaded worker holds its core idle then,
# and a burst queues behind it. A few threads per worker run other requests meanwhile
# (measured by bench/api.py on 2 cores, 2 workers: single upserts 180 req/s with p99 760 ms
# on sync workers, 280 with p99 170 ms on 4 threads, same machine load), and they keep
# clients' connections alive between requests (a sync worker closes each). Every thread has
# its own database connection: workers x threads x machines must stay below PostgreSQL's
# max_connections (or a pooler's). Scale out with more processes or more machines, never
# with in-process state.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak can never grow without bound.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
# The load balancer sets X-Forwarded-Proto; trust it only from the addresses listed.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESSLOG", "-") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
