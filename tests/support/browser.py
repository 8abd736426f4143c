"""Debian's chromium driven by Playwright (`playwright install` cannot download here)."""

import os
import shutil
import time

import pytest

# CHROMIUM_PATH names another chromium build; else the one on the PATH (Debian's package).
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def missing_chromium() -> str | None:
    """Why there is no chromium to drive, with how to get one; None when there is."""
    if os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return None
    return f"no chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)"


def require_chromium() -> None:
    """Skip a test that drives chromium when there is none (the browser-marked ones are not
    even collected then: see tests/conftest.py)."""
    reason = missing_chromium()
    if reason:
        pytest.skip(reason)


def launch(playwright):
    require_chromium()
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_until(page, expression: str, *, timeout: float = 30_000):
    """page.wait_for_function for pages under our Content-Security-Policy: Playwright polls a
    string predicate through eval in the page, which the policy (no 'unsafe-eval') refuses.
    page.evaluate goes through the debugging protocol instead. timeout in ms, as Playwright's."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout / 1000:g} s: {expression}")
        page.wait_for_timeout(50)
