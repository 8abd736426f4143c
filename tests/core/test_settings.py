import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "DEBUG": "False",
    "SECRET_KEY": "k8#v2!pQz7wL0rT4yN9bX3mC6hJ1fD5sA8gE2uK7iO4lP0qW3eR6tY9",
    "ALLOWED_HOSTS": "mail.example.com",
    "SITE_URL": "https://mail.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # Browser tests allow Django's ORM next to Playwright's event loop in this process: that
    # switch must not leak into the "production" process checked here.
    leaked = {*PRODUCTION, "DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean = {k: v for k, v in os.environ.items() if k not in leaked}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_malformed_boolean_stops_startup_naming_the_variable():
    result = _manage("check", DEBUG="yes-please")
    assert result.returncode != 0
    assert "DEBUG='yes-please' is not a boolean" in result.stderr


def test_a_malformed_integer_names_its_variable():
    result = _manage("check", EMAIL_PORT="twenty-five")
    assert result.returncode != 0
    assert "EMAIL_PORT='twenty-five' is not an integer" in result.stderr


def test_production_requires_a_secret_key():
    result = _manage("check", DEBUG="False", ALLOWED_HOSTS="x.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_secret_key_can_come_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text(PRODUCTION["SECRET_KEY"] + "\n")
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING", SECRET_KEY_FILE=str(secret), **env
    )
    assert result.returncode == 0, result.stderr


def test_check_deploy_is_clean_with_production_values():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_when_site_url_is_not_https():
    env = {**PRODUCTION, "SITE_URL": "http://mail.example.com"}
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode != 0
    assert "core.W001" in result.stderr + result.stdout
    assert "SITE_URL='http://mail.example.com' is not https" in result.stderr + result.stdout


def test_development_defaults_need_no_service(tmp_path):
    result = _manage("check", VAR_DIR=str(tmp_path), DATABASE_URL="", CELERY_BROKER_URL="")
    # An empty DATABASE_URL falls back to SQLite under VAR_DIR; the filesystem broker too.
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "broker" / "queue").is_dir()
