import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.smtp import free_port
from tests.support.workers import worker_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_the_gunicorn_config_loads_and_serves_healthz():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"],
        cwd=ROOT,
        env={**worker_env(), "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    body = r.read()
                    status = r.status
                break
            except OSError:
                time.sleep(0.1)
        assert body is not None, "gunicorn did not answer"
        assert status == 200
        assert b'"status": "ok"' in body
    finally:
        process.terminate()
        process.wait(timeout=30)
