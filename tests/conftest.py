import asyncio
import os
from importlib import import_module

import pytest
from django.apps import apps
from django.db import connection, connections
from django.test import override_settings

from core.roles import Role
from tests.support.browser import missing_chromium
from tests.support.factories import UserFactory
from tests.support.smtp import Sink
from tests.support.workers import Worker, purge_queue


def pytest_collection_modifyitems(config, items):
    """Every transactional test restores the migrated rows (role groups, exit-survey reasons,
    the dispatcher's periodic task) with a serialized rollback. Mixing the two kinds breaks
    either way: a plain flush re-creates content types through post_migrate, and the next
    serialized test then inserts them twice (IntegrityError at its set-up)."""
    for item in items:
        marker = item.get_closest_marker("django_db")
        kwargs = dict(marker.kwargs) if marker else {}
        if marker and marker.args:
            kwargs.setdefault("transaction", marker.args[0])
        transactional = kwargs.get("transaction") or "transactional_db" in item.fixturenames
        if transactional and not kwargs.get("serialized_rollback"):
            kwargs.update(transaction=True, serialized_rollback=True)
            item.add_marker(pytest.mark.django_db(**kwargs), append=False)
    _without_chromium(config, items)


_BROWSER_TESTS_NOT_RUN = pytest.StashKey[str]()


def _without_chromium(config, items):
    """With no chromium to drive, the browser tests are not run, and one line says so."""
    reason = missing_chromium()
    browser = [item for item in items if item.get_closest_marker("browser")]
    if reason is None or not browser:
        return
    items[:] = [item for item in items if not item.get_closest_marker("browser")]
    config.hook.pytest_deselected(items=browser)
    config.stash[_BROWSER_TESTS_NOT_RUN] = f"{len(browser)} browser tests not run: {reason}"


def pytest_terminal_summary(terminalreporter, config):
    line = config.stash.get(_BROWSER_TESTS_NOT_RUN, None)
    if line:
        terminalreporter.write_line(line, yellow=True)


def pytest_collection_finish(session):
    if connection.vendor != "postgresql":
        pytest.exit("The suite runs on PostgreSQL: use `make test` (it sets DATABASE_URL).", 2)


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing():
    """Passwords are hashed with a cheap PBKDF2 (tests/support/hashers.py): the default one
    costs a third of a second per user made or password checked. The other hashers stay, so
    that a hash in any of their formats is still checked."""
    from django.conf import settings

    fast = "tests.support.hashers.FastPBKDF2PasswordHasher"
    others = [
        path
        for path in settings.PASSWORD_HASHERS
        if path != "django.contrib.auth.hashers.PBKDF2PasswordHasher"
    ]
    with override_settings(PASSWORD_HASHERS=[fast, *others]):
        yield


@pytest.fixture(scope="session")
def _close_connections_opened_beside_playwright(django_db_setup):
    """While Playwright's sync API runs its event loop in the test's thread, asgiref keeps that
    thread's database connections context-local instead of thread-local: the ORM calls a
    browser test makes open a second connection, which Django's own clean-up never sees. Left
    open, it stops the test database's drop at the end ("accessed by other users")."""
    yield

    async def close_all() -> None:  # a running loop: the same context-local connections
        connections.close_all()

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        asyncio.run(close_all())  # runs in a copy of this context: it holds them too
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def role_groups(db):
    """The role groups, made by the app's own roles migration: an earlier transactional test's
    flush removes them."""
    import_module("core.migrations.0001_roles").create_groups(apps, None)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="alice-admin", role=Role.ADMIN)


@pytest.fixture
def editor_user(db):
    return UserFactory(username="eddie-editor", role=Role.EDITOR)


@pytest.fixture
def viewer_user(db):
    return UserFactory(username="vera-viewer", role=Role.VIEWER)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def editor_client(client, editor_user):
    client.force_login(editor_user)
    return client


@pytest.fixture
def viewer_client(client, viewer_user):
    client.force_login(viewer_user)
    return client


@pytest.fixture(scope="session")
def worker_process(django_db_setup, django_db_blocker):
    """One real worker process for the session; tests using it need transactional_db."""
    with django_db_blocker.unblock():
        purge_queue()
        worker = Worker(concurrency=2)
        try:
            worker.wait_ready()
            yield worker
        finally:
            worker.stop()


@pytest.fixture
def smtp_sink():
    """A real SMTP server on loopback; ``.port``, ``.parsed()``, ``.wait_for(n)``."""
    with Sink() as sink:
        yield sink


@pytest.fixture
def django_smtp(settings, smtp_sink):
    """Django's own SMTP backend pointed at the sink."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_sink.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    return smtp_sink


@pytest.fixture(autouse=True)
def _orm_beside_playwright(request, monkeypatch):
    # Playwright's sync API runs an event loop in the test's thread; Django would then refuse
    # database access from the (synchronous) test itself. Only for browser tests.
    if request.node.get_closest_marker("browser"):
        request.getfixturevalue("_close_connections_opened_beside_playwright")
        monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def chromium():
    """Debian's chromium for one test. While Playwright's loop lives in this thread, Django
    must be told the (synchronous) test may still use the ORM."""
    from playwright.sync_api import sync_playwright

    from tests.support.browser import launch

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = launch(playwright)
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
