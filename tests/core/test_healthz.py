import json
import subprocess
import sys
from pathlib import Path

from tests.support.workers import worker_env

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import django, json
django.setup()
from django.test import Client
response = Client().get("/healthz")
print(json.dumps({"status": response.status_code, "body": response.json()}))
"""


def _healthz_in_a_process_with(**env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**worker_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_healthz_answers_ok_when_database_and_broker_answer(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok"},
        "down": [],
    }
    assert "max-age=0" in response["Cache-Control"]


def test_healthz_names_the_broker_when_it_is_down(db):
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    answer = _healthz_in_a_process_with(CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    assert answer["status"] == 503
    assert answer["body"]["down"] == ["broker"]
    assert answer["body"]["checks"]["database"] == "ok"


def test_healthz_names_the_database_when_it_is_down():
    answer = _healthz_in_a_process_with(DATABASE_URL="postgres://postgres@127.0.0.1:1/nofailmail")
    assert answer["status"] == 503
    assert answer["body"]["down"] == ["database"]
