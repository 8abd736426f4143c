"""Debian's chromium driven by Playwright (`playwright install` cannot download here)."""

import time

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright):
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
