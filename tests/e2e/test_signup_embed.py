"""The embed snippet on a page of ANOTHER origin, in Debian's chromium: both steps, the
confirmation email on a real SMTP server, confirm, download the lead magnet."""

import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import connections
from playwright.sync_api import sync_playwright

from nofailmail.celery import app as celery_app
from signup.models import LeadMagnet, Signup, SignupForm
from signup.views import embed_snippet
from subscribers.models import ConsentRecord, CustomField, Subscriber
from tests.support.browser import launch
from tests.support.factories import CustomFieldFactory, SignupFormFactory, TopicFactory
from tests.support.smtp import Sink, free_port, html_of, text_of

pytestmark = pytest.mark.browser

CONFIRM_RE = re.compile(r"https?://[^\s\"<>]+/forms/c/[^\s\"<>/]+/")
PDF = b"%PDF-1.4\n% the NoFailMail checklist\n"


class _OtherSite:
    """A second HTTP server on another loopback port: the customer's website."""

    def __init__(self, port: int, html: str):
        body = html.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink(settings):
    cache.clear()  # confirmation windows and rate limits of earlier runs live in Redis
    sink = Sink().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = sink.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield sink
    sink.stop()


@pytest.fixture
def eager_tasks():
    # The email task runs in the live server's thread right after the commit (on_commit):
    # tests/signup/test_worker.py proves the same task runs on a real worker over Redis.
    celery_app.conf.update(task_always_eager=True)
    yield
    celery_app.conf.update(task_always_eager=False)


@pytest.fixture
def browser():
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are plain synchronous calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = launch(p)
        yield browser
        browser.close()
        # With Playwright's loop running, the ORM's connection belongs to this context: close
        # it here, or the test database cannot be dropped at the end of the session.
        connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def _form(settings, tmp_path, origin: str) -> SignupForm:
    settings.MEDIA_ROOT = tmp_path
    topic = TopicFactory(name="Weekly", slug="weekly", public_name="Weekly letter")
    CustomFieldFactory(key="company", label="Company", type=CustomField.Type.TEXT)
    magnet = LeadMagnet(name="The checklist", link_hours=24)
    magnet.file.save("checklist.pdf", ContentFile(PDF), save=True)
    form = SignupFormFactory(
        name="Newsletter",
        steps=[
            {"title": "", "fields": [{"kind": "email"}, {"kind": "consent", "required": True}]},
            {
                "title": "About you",
                "fields": [
                    {"kind": "first_name", "required": True},
                    {"kind": "attribute", "key": "company", "help_text": "Where you work"},
                    {"kind": "topics"},
                ],
            },
        ],
        consent_text="I agree to receive the weekly letter.",
        consent_version="2026-11",
        allowed_origins=origin,
        min_fill_seconds=1,
        lead_magnet=magnet,
        theme={"primary_color": "#aa3300", "button_text": "Join"},
    )
    form.topics.set([topic])
    return form


def test_the_snippet_on_another_origin_signs_up_confirms_and_downloads(
    live_server, settings, tmp_path, sink, eager_tasks, browser, transactional_db
):
    settings.SITE_URL = live_server.url
    port = free_port()
    other_origin = f"http://127.0.0.1:{port}"
    form = _form(settings, tmp_path, other_origin)
    page_html = (
        "<!doctype html><html><head><title>Acme blog</title>"
        "<style>input{background:hotpink}</style></head><body><h1>Acme blog</h1>"
        f"<p>Subscribe below.</p>{embed_snippet(form)}</body></html>"
    )
    with _OtherSite(port, page_html):
        page = browser.new_page()
        page.goto(f"{other_origin}/post/42?utm_source=blog&utm_campaign=autumn")
        assert live_server.url.split(":")[-1] != str(port)  # two origins
        email_input = page.locator(".nofailmail-form input[name=email]")
        email_input.wait_for(timeout=15000)
        email_input.fill("ada@example.com")
        page.locator(".nofailmail-form input[name=consent]").check()
        time.sleep(1.1)  # the form's minimum fill time
        page.locator(".nofailmail-form button[type=submit]").click()

        page.locator(".nofailmail-form input[name=first_name]").wait_for(timeout=15000)
        # Step 1 is saved at once: the address is captured before step 2.
        subscriber = Subscriber.objects.get()
        assert (subscriber.email, subscriber.status) == ("ada@example.com", "unconfirmed")
        page.locator(".nofailmail-form input[name=first_name]").fill("Ada")
        page.locator(".nofailmail-form input[name=attr_company]").fill("Analytical Engines")
        page.locator(".nofailmail-form input[name=topics]").check()
        page.locator(".nofailmail-form button[type=submit]").click()
        success = page.locator(".nofailmail-form .success")
        success.wait_for(timeout=15000)
        assert "Check your inbox" in success.inner_text()

    (confirmation,) = sink.wait_for(1)
    assert confirmation["To"] == "ada@example.com"
    assert confirmation["Subject"] == "Please confirm your subscription"
    # Sent when the visitor finished step 2, so it greets them by the name it asked.
    assert "Hello Ada," in text_of(confirmation)
    link = CONFIRM_RE.search(text_of(confirmation)).group(0)
    assert link in html_of(confirmation)
    subscriber.refresh_from_db()
    assert subscriber.first_name == "Ada"
    assert subscriber.attributes == {"company": "Analytical Engines"}
    assert subscriber.status == Subscriber.Status.UNCONFIRMED

    page.goto(link)
    assert "Confirm your subscription" in page.content()
    assert Subscriber.objects.get().status == Subscriber.Status.UNCONFIRMED  # a GET changes nothing
    page.get_by_role("button", name="Yes, subscribe me").click()
    page.get_by_text("You are subscribed").wait_for(timeout=15000)
    with page.expect_download() as download_info:
        page.locator("a.nfm-download").click()
    download = download_info.value
    assert download.suggested_filename == "checklist.pdf"
    with open(download.path(), "rb") as handle:
        assert handle.read() == PDF

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert list(subscriber.subscriptions.values_list("topic__slug", flat=True)) == ["weekly"]
    consent = ConsentRecord.objects.get()
    assert (consent.text, consent.version) == ("I agree to receive the weekly letter.", "2026-11")
    assert consent.ip == "127.0.0.1" and "Chrome" in consent.user_agent
    signup = Signup.objects.get()
    assert signup.steps_completed == 2
    assert signup.source_page == f"{other_origin}/post/42"
    assert (signup.utm_source, signup.utm_campaign) == ("blog", "autumn")
    assert LeadMagnet.objects.get().downloads == 1
    # The welcome email carries the same (expiring, signed) download link.
    welcome = sink.wait_for(2)[1]
    assert "/forms/d/" in text_of(welcome)


def test_the_iframe_fallback_works_on_a_site_without_javascript(
    live_server, settings, tmp_path, sink, eager_tasks, browser, transactional_db
):
    settings.SITE_URL = live_server.url
    port = free_port()
    other_origin = f"http://127.0.0.1:{port}"
    form = _form(settings, tmp_path, other_origin)
    html = f"<!doctype html><html><body><h1>No JS here</h1>{embed_snippet(form)}</body></html>"
    with _OtherSite(port, html):
        context = browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.goto(f"{other_origin}/")
        frame = page.frame_locator("iframe")
        frame.locator("input[name=email]").fill("grace@example.com")
        frame.locator("input[name=consent]").check()
        time.sleep(1.1)
        frame.locator("button[type=submit]").click()
        frame.locator("input[name=first_name]").fill("Grace")
        frame.locator("button[type=submit]").click()
        frame.get_by_text("Check your inbox").wait_for(timeout=15000)
        context.close()
    assert Subscriber.objects.get().first_name == "Grace"
    assert sink.wait_for(1)[0]["To"] == "grace@example.com"


def test_the_browser_solves_the_proof_of_work_on_the_embed_and_the_hosted_page(
    live_server, settings, tmp_path, sink, eager_tasks, browser, transactional_db
):
    """embed.js carries its own SHA-256: the server must accept what it computes."""
    settings.SITE_URL = live_server.url
    settings.SIGNUP_POW_BITS = 12
    port = free_port()
    other_origin = f"http://127.0.0.1:{port}"
    form = _form(settings, tmp_path, other_origin)
    form.proof_of_work = True
    form.min_fill_seconds = 0
    form.save()
    html = f"<!doctype html><html><body>{embed_snippet(form)}</body></html>"
    with _OtherSite(port, html):
        page = browser.new_page()
        page.goto(f"{other_origin}/")
        page.locator(".nofailmail-form input[name=email]").fill("pow@example.com")
        page.locator(".nofailmail-form input[name=consent]").check()
        page.locator(".nofailmail-form button[type=submit]").click()
        page.locator(".nofailmail-form input[name=first_name]").wait_for(timeout=30000)
        page.close()
    page = browser.new_page()
    page.goto(f"{live_server.url}/forms/f/{form.public_id}/")
    page.fill("input[name=email]", "hosted@example.com")
    page.check("input[name=consent]")
    page.click("button[type=submit]")
    page.wait_for_selector("input[name=first_name]", timeout=30000)
    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "pow@example.com",
        "hosted@example.com",
    }


def test_a_site_that_is_not_allow_listed_can_neither_load_nor_frame_the_form(
    live_server, settings, tmp_path, sink, browser, transactional_db
):
    settings.SITE_URL = live_server.url
    port = free_port()
    form = _form(settings, tmp_path, "https://only-this-site.example")
    frame_url = f"{live_server.url}/forms/f/{form.public_id}/frame/"
    html = (
        f"<!doctype html><html><body>{embed_snippet(form)}"
        f'<iframe id="direct" src="{frame_url}"></iframe></body></html>'
    )
    with _OtherSite(port, html):
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_text("This form could not be loaded.").wait_for(timeout=15000)
        page.wait_for_timeout(1000)
        # CSP frame-ancestors: chromium refuses to show the form inside this page.
        framed = page.query_selector("#direct").content_frame()
        assert framed.url.startswith("chrome-error://"), framed.url
        assert page.frame_locator("#direct").locator("input[name=email]").count() == 0
        page.close()
    assert not Subscriber.objects.exists()
