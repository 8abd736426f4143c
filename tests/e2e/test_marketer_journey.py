"""A marketer's first hour, as ONE browser test: import a list, segment it, capture a
visitor on another site, write a newsletter, schedule it, and read what the recipient did.

Everything goes through chromium as a marketer (or visitor, or recipient) would click, against
a live server, a real Celery worker over Redis, a real ``celery beat`` running the dispatcher,
and a real SMTP server (the sink) receiving every message.
"""

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.db import connections
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from playwright.sync_api import expect

from analytics.classification import SCANNER_CLICK_SECONDS
from nofailmail.celery import app as celery_app
from subscribers.models import CustomField, Subscriber
from tests.support.factories import IntervalScheduleFactory
from tests.support.smtp import Sink, free_port, html_of, text_of
from tests.support.workers import ROOT, Worker, worker_env

pytestmark = [pytest.mark.browser, pytest.mark.worker]

PASSWORD = "pw-alice-admin"
PDF = b"%PDF-1.4\n% The migration checklist\n"
# What a spreadsheet saved as "CSV (semicolon)" on a French Excel looks like: BOM, ';', CRLF.
CSV = (
    "\ufeffE-mail;Prénom;Nom;Société;Ville\r\n"
    "ada@example.com;Ada;Lovelace;Analytical Engines;London\r\n"
    "charles@example.com;;Babbage;Analytical Engines;London\r\n"
    "emilie@example.com;Émilie;du Châtelet;Analytical Engines;Paris\r\n"
    "grace@example.com;Grace;Hopper;US Navy;Arlington\r\n"
).encode()
THREE_MATCH = re.compile(r"^3 subscribers match")
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.4.0"
TIMEOUT = 20_000  # ms, for any one step to show its result


class OtherSite:
    """The customer's website, on another origin: any path answers ``html``."""

    def __init__(self):
        self.html = "<!doctype html><title>Acme</title><h1>Acme</h1>"
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = site.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
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


class Beat:
    """A real ``celery beat`` (django-celery-beat's database scheduler) as a process."""

    def __init__(self, **env: str):
        name = uuid.uuid4().hex[:8]
        self.log = Path(f"/tmp/nofailmail-beat-{name}.log")
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "nofailmail",
                "beat",
                "--loglevel=info",
                "--max-interval=1",
                f"--pidfile=/tmp/nofailmail-beat-{name}.pid",
            ],
            cwd=ROOT,
            env=worker_env(**env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log_file.close()


@pytest.fixture
def stack(live_server, settings, tmp_path, transactional_db, admin_user):
    """The sink, a worker and beat on a queue of their own, all pointed at the live server."""
    cache.clear()  # rate limits and confirmation windows of earlier runs live in Redis
    settings.SITE_URL = live_server.url
    settings.MEDIA_ROOT = tmp_path
    sink = Sink().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    # An admin shortens the dispatcher's interval (django-celery-beat's schedule lives in the
    # database): beat then checks for due campaigns every second.
    every = IntervalScheduleFactory(every=1, period=IntervalSchedule.SECONDS)
    assert PeriodicTask.objects.filter(task="campaigns.tasks.campaigns_dispatch").update(
        interval=every
    )
    queue = f"journey-{uuid.uuid4().hex[:8]}"
    env = {
        "CELERY_QUEUE": queue,
        "SITE_URL": live_server.url,
        "MEDIA_ROOT": str(tmp_path),
        "EMAIL_BACKEND": settings.EMAIL_BACKEND,
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(sink.port),
    }
    before = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    worker = Worker(concurrency=2, **env)
    beat = Beat(**env)
    try:
        worker.wait_ready()
        yield sink
    finally:
        beat.stop()
        worker.stop()
        celery_app.conf.task_default_queue = before
        sink.stop()
        connections.close_all()


def _exactly(label: str) -> re.Pattern:
    """A field's label as crispy forms writes it (a required one ends with "*")."""
    return re.compile(rf"^\s*{re.escape(label)}\s*\*?\s*$")


def _messages_to(sink: Sink, address: str, count: int = 1, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in sink.parsed() if address in m["To"]]
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{address}: {len(found)} message(s), expected {count}")


def _counts_rules(response, op: str, value) -> bool:
    """Whether ``response`` answers the segment builder's live count for rules whose last
    condition is ``op`` with ``value``."""
    if "/subscribers/segments/count" not in response.url:
        return False
    posted = parse_qs(response.request.post_data or "").get("rules", ["{}"])
    conditions = json.loads(posted[0]).get("conditions") or [{}]
    return (conditions[-1].get("op"), conditions[-1].get("value")) == (op, value)


@pytest.fixture
def site():
    with OtherSite() as other:
        yield other


def test_a_marketers_first_hour(stack, site, chromium, live_server):
    sink = stack
    url = live_server.url
    context = chromium.new_context()
    context.set_default_timeout(TIMEOUT)
    expect.set_options(timeout=TIMEOUT)
    page = context.new_page()

    # --- log in ---------------------------------------------------------------------------
    page.goto(f"{url}/login/")
    page.get_by_label("Username").fill("alice-admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    nav = page.get_by_role("navigation")
    expect(nav.get_by_role("link", name="Subscribers", exact=True)).to_be_visible()

    # --- two topics ------------------------------------------------------------------------
    page.goto(f"{url}/subscribers/topics/")
    page.get_by_label(_exactly("Name")).fill("Product news")
    page.get_by_label(_exactly("Slug")).fill("product-news")
    page.get_by_label(_exactly("Public name")).fill("News about the product")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Topic saved.")).to_be_visible()
    page.get_by_label(_exactly("Name")).fill("Events")
    page.get_by_label(_exactly("Slug")).fill("events")
    page.get_by_label(_exactly("Public name")).fill("Events near you")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Events near you")).to_be_visible()

    # --- import a semicolon CSV with a BOM, making the custom field on the spot -----------
    page.goto(f"{url}/subscribers/import/")
    page.get_by_label("CSV file").set_input_files(
        {"name": "export-excel.csv", "mimeType": "text/csv", "buffer": CSV}
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_role("heading", name=re.compile("map the columns"))).to_be_visible()
    page.get_by_label("Import E-mail as").select_option("email")
    page.get_by_label("Import Prénom as").select_option("first_name")
    page.get_by_label("Import Nom as").select_option("last_name")
    page.get_by_label("Import Société as").select_option("new")  # "New field…"
    page.get_by_label("New field's name for Société").fill("Company")
    page.get_by_label("New field's type for Société").select_option("text")
    page.get_by_label("Import Ville as").select_option("ignore")
    page.get_by_label("Product news").check()
    page.get_by_label("Events", exact=True).check()
    page.get_by_label("They already consented (imported as confirmed)").check()
    page.get_by_label("Consent note").fill("Opted in on our old Mailchimp list, 2024.")
    page.get_by_role("button", name="Start the import").click()
    summary = page.locator("#import-summary")
    expect(summary.get_by_role("row", name="Created 4")).to_be_visible()
    expect(summary.get_by_role("row", name="Rejected 0")).to_be_visible()
    emilie = Subscriber.objects.get(email="emilie@example.com")
    assert (emilie.first_name, emilie.last_name) == ("Émilie", "du Châtelet")
    assert emilie.attributes == {"company": "Analytical Engines"}
    assert emilie.status == Subscriber.Status.ACTIVE
    assert CustomField.objects.filter(key="company", label="Company", type="text").exists()

    # --- a segment on the custom attribute and an engagement condition ---------------------
    page.goto(f"{url}/subscribers/segments/new")
    page.get_by_label(_exactly("Name")).fill("Analytical, not yet engaged")
    builder = page.locator("#rule-builder")
    builder.get_by_role("button", name="+ condition").click()
    row = builder.locator(".condition").nth(0)
    row.get_by_label("Field").select_option(label="Company")
    row.get_by_label("Operator").select_option(label="is")
    row.get_by_label("Value").fill("Analytical Engines")
    expect(page.locator("#segment-count")).to_have_text(THREE_MATCH)
    builder.get_by_role("button", name="+ condition").click()
    row = builder.locator(".condition").nth(1)
    row.get_by_label("Field").select_option(label="Human engagement")
    row.get_by_label("Operator").select_option(label="not opened in the last N days")
    # The count shown is the one computed with both conditions (it was 3 before this one).
    with page.expect_response(lambda r: _counts_rules(r, "not_opened", 30)) as counted:
        row.get_by_label("Value").fill("30")
    assert counted.value.ok
    expect(page.locator("#segment-count")).to_have_text(THREE_MATCH)
    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_text("Segment Analytical, not yet engaged saved.")).to_be_visible()

    # --- a newsletter template with merge tags and a fallback ------------------------------
    page.goto(f"{url}/templates/new/newsletter/")
    page.get_by_label(_exactly("Name")).fill("Monthly letter")
    page.get_by_label(_exactly("Subject")).fill('News for {{ first_name|default:"you" }}')
    page.get_by_label(_exactly("HTML body")).fill(
        '<p>Hello {{ first_name|default:"there" }},</p>'
        "<p>Here is what is new for everyone at {{ attr.company }}.</p>"
        f'<p><a href="{site.origin}/guide">Read the migration guide</a></p>'
    )
    page.get_by_role("button", name=re.compile("^Save")).click()
    expect(page.get_by_text("“Monthly letter” saved as version 1.")).to_be_visible()

    # --- the SMTP server to send through ---------------------------------------------------
    page.goto(f"{url}/campaigns/connections/new/")
    page.get_by_label(_exactly("Name")).fill("Our SMTP relay")
    page.get_by_label(_exactly("Backend")).fill("django.core.mail.backends.smtp.EmailBackend")
    page.get_by_label(_exactly("Options")).fill(f'{{"host": "127.0.0.1", "port": {sink.port}}}')
    page.get_by_label(_exactly("Sending domain")).fill("acme.example")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Our SMTP relay")).to_be_visible()

    # --- a campaign to the segment: pre-flight, test send, schedule -------------------------
    page.goto(f"{url}/campaigns/new/")
    page.get_by_label(_exactly("Name")).fill("November letter")
    page.get_by_label(_exactly("Segment")).select_option(label="Analytical, not yet engaged")
    expect(page.locator("#audience-count")).to_have_text(re.compile(r"^3 recipient"))
    page.get_by_label(_exactly("Template")).select_option(label="Monthly letter")
    page.get_by_label(_exactly("From name")).fill("Acme")
    page.get_by_label(_exactly("From email")).fill("news@acme.example")
    page.get_by_label(_exactly("Connection")).select_option(label="Our SMTP relay")
    page.get_by_role("button", name="Save and review →").click()
    expect(page.locator("#status")).to_have_text("Draft")

    page.get_by_role("link", name="Run the pre-flight checks").click()
    expect(page.get_by_text("No blocking finding.")).to_be_visible()
    page.get_by_role("link", name="← Back to the campaign").click()

    page.get_by_label(_exactly("Addresses")).fill("marketer@acme.example")
    page.get_by_role("button", name="Send a test").click()
    expect(page.get_by_text(re.compile(r"1 test message sent"))).to_be_visible()
    (test_message,) = _messages_to(sink, "marketer@acme.example")
    assert "Read the migration guide" in text_of(test_message)

    zone = "Europe/Paris"
    # The form takes minutes (a datetime-local input): the next minute on a Paris clock.
    send_at = (datetime.now(ZoneInfo(zone)) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    page.get_by_label(_exactly("Kind")).select_option("once")
    page.get_by_label(_exactly("Send at (local time)")).fill(send_at.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label(_exactly("Timezone")).fill(zone)  # a searchable list (datalist)
    page.get_by_role("button", name="Schedule", exact=True).click()
    expect(page.get_by_text(re.compile("Scheduled for .* UTC"))).to_be_visible()
    expect(page.locator("#status")).to_have_text("Scheduled")

    # While the letter waits for its minute, in a second tab: the signup form. (The campaign
    # tab stays open, untouched.) The visitor works elsewhere: not in the segment.
    campaign_page, page = page, context.new_page()
    # --- a lead magnet and a two-step signup form, embedded on another origin -------------
    page.goto(f"{url}/forms/lead-magnets/")
    page.get_by_label(_exactly("Name")).fill("The migration checklist")
    page.get_by_label(_exactly("File")).set_input_files(
        {"name": "checklist.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    page.get_by_role("button", name="Add").click()
    expect(page.get_by_role("cell", name="checklist.pdf")).to_be_visible()

    page.goto(f"{url}/forms/new/")
    page.get_by_label(_exactly("Name")).fill("Blog signup")
    step2 = page.locator('#builder [data-step="2"]')
    step2.get_by_role("button", name="+ Field").click()
    step2.locator("[data-field]").nth(1).locator("select").first.select_option("attribute")
    step2.locator('[data-field="attribute"] select').nth(1).select_option("company")
    page.get_by_label("Product news").check()
    page.get_by_label(_exactly("Lead magnet")).select_option(label="The migration checklist")
    page.get_by_label(_exactly("Allowed origins")).fill(site.origin)
    page.get_by_label(_exactly("Minimum fill time (seconds)")).fill("0")
    page.get_by_role("button", name="Save form").click()
    expect(page.get_by_role("heading", name="Blog signup")).to_be_visible()
    snippet = page.locator("#embed-snippet").input_value()
    site.html = (
        "<!doctype html><html><head><title>Acme blog</title></head><body>"
        f"<h1>Acme blog</h1><p>Get our newsletter:</p>{snippet}</body></html>"
    )

    visitor = chromium.new_context()  # no cookie of the marketer's
    visitor.set_default_timeout(TIMEOUT)
    page_v = visitor.new_page()
    page_v.goto(f"{site.origin}/blog/moving-from-mailchimp?utm_source=blog")
    embedded = page_v.locator(".nofailmail-form")
    embedded.get_by_label(re.compile("Email")).fill("visitor@example.org")
    embedded.get_by_role("button").click()
    embedded.get_by_label(re.compile("First name")).fill("Vic")
    embedded.get_by_label(re.compile("Company")).fill("Acme")
    embedded.get_by_role("button").click()
    expect(embedded.locator(".success")).to_contain_text("Check your inbox")

    # Both steps done: the confirmation arrives, greeting the visitor by the name step 2 asked.
    (confirmation,) = _messages_to(sink, "visitor@example.org")
    assert "Hello Vic," in text_of(confirmation)
    confirm_link = re.search(r"https?://\S+/forms/c/[^\s/]+/", text_of(confirmation)).group(0)
    page_v.goto(confirm_link)
    page_v.get_by_role("button", name="Yes, subscribe me").click()
    expect(page_v.get_by_text("You are subscribed")).to_be_visible()
    expect(page_v.get_by_text(re.compile("check your inbox", re.I))).to_have_count(0)
    with page_v.expect_download() as download:
        page_v.get_by_role("link", name=re.compile("checklist", re.I)).click()
    assert download.value.suggested_filename == "checklist.pdf"
    assert Path(download.value.path()).read_bytes() == PDF
    visitor.close()
    vic = Subscriber.objects.get(email="visitor@example.org")
    assert (vic.status, vic.first_name, vic.attributes) == ("active", "Vic", {"company": "Acme"})
    page.close()
    page = campaign_page

    # Nobody touched the page: beat started it, the worker sent, the page followed by itself.
    expect(page.locator("#status")).to_have_text("Finished", timeout=100_000)
    expect(page.locator("#progress")).to_contain_text("3 sent / 3")
    ada_messages = _messages_to(sink, "ada@example.com")
    (letter,) = ada_messages
    charles = _messages_to(sink, "charles@example.com")[0]
    assert "Hello there," in text_of(charles)  # no first name: the fallback
    assert "Hello Ada," in text_of(letter)
    assert "everyone at Analytical Engines." in text_of(letter)
    assert letter["Subject"] == "News for Ada"

    # --- the recipient, in their mail client: open, click, preferences, leave ---------------
    sent_at = sink.times[sink.parsed().index(letter)]
    reader = chromium.new_context(user_agent=THUNDERBIRD)
    reader.set_default_timeout(TIMEOUT)
    page_r = reader.new_page()
    with page_r.expect_response(lambda r: "/t/o/" in r.url) as pixel:
        page_r.set_content(html_of(letter))  # shows the message, images load
    assert pixel.value.status == 200
    assert pixel.value.headers["content-type"] == "image/gif"
    # Nobody reads and clicks within SCANNER_CLICK_SECONDS of the send: a click that early
    # is counted as a link scanner's. The recipient reads first.
    time.sleep(max(0.0, sent_at + SCANNER_CLICK_SECONDS + 1 - time.time()))
    page_r.get_by_role("link", name="Read the migration guide").click()
    page_r.wait_for_url(f"{site.origin}/guide**")

    preferences_link = re.search(r"Preferences: (\S+)", text_of(letter)).group(1)
    page_r.goto(preferences_link)
    expect(page_r.get_by_role("heading", name="Your email preferences")).to_be_visible()
    page_r.get_by_role("switch", name=re.compile("Events near you")).uncheck()
    page_r.get_by_role("button", name="Save topics").click()
    expect(page_r.get_by_text("Your topics are saved.")).to_be_visible()

    # The mailbox provider's "Unsubscribe" button: RFC 8058, no cookie, no CSRF token.
    assert letter["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    one_click = re.search(r"<(https?://[^>]+)>", letter["List-Unsubscribe"]).group(1)
    mailbox = chromium.new_context()
    response = mailbox.request.post(
        one_click,
        data="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        max_redirects=0,
    )
    assert response.status == 200
    mailbox.close()
    ada = Subscriber.objects.get(email="ada@example.com")
    assert ada.status == Subscriber.Status.UNSUBSCRIBED

    # Later the recipient follows the unsubscribe link of the message and says why.
    unsubscribe_link = re.search(r"Unsubscribe: (\S+)", text_of(letter)).group(1)
    page_r.goto(unsubscribe_link)
    page_r.get_by_role("link", name=re.compile("Tell us why")).click()
    page_r.get_by_label("I get too many emails").check()
    page_r.get_by_label("Anything else you would like to tell us?").fill("Monthly is a lot")
    page_r.get_by_role("button", name="Send my answer").click()
    expect(page_r.get_by_role("heading", name="Thank you")).to_be_visible()
    reader.close()

    # --- the report counts each of those, and the subscriber's timeline shows them ----------
    page.goto(f"{url}/campaigns/")
    page.get_by_role("link", name="November letter").click()
    page.get_by_role("link", name=re.compile("^Report")).click()
    expect(page.get_by_role("heading", name="November letter")).to_be_visible()
    report_url = page.url
    tiles = page.locator("#report-tiles")
    # Opens and clicks are recorded through a buffer that beat flushes every few seconds.
    deadline = time.monotonic() + 30
    while tiles.locator("[data-metric=human-clicks]").inner_text() != "1":
        assert time.monotonic() < deadline, tiles.inner_text()
        page.wait_for_timeout(250)  # the poll's pace, then a fresh look
        page.goto(report_url)
    expect(tiles.locator("[data-metric=sent]")).to_have_text("3")
    expect(tiles.locator("[data-metric=human-opens]")).to_have_text("1")
    expect(tiles.locator("[data-metric=unsubscribes]")).to_have_text("1")
    expect(page.locator("#link-table")).to_contain_text(f"{site.origin}/guide")
    expect(page.locator("#exit-survey")).to_contain_text(
        "1 answer from people who unsubscribed through this campaign"
    )
    expect(page.locator("#exit-survey")).to_contain_text("I get too many emails")
    expect(page.locator("#exit-survey")).to_contain_text("Monthly is a lot")

    page.goto(f"{url}/subscribers/?q=ada%40example.com")
    page.get_by_role("link", name="ada@example.com").click()
    timeline = page.locator("[data-kind]")
    for text in [
        "Opened “November letter”",
        f"Clicked {site.origin}/guide in “November letter”",
        "Unsubscribed from Events, from “November letter” (through the preference center)",
        "Unsubscribed from all email, from “November letter” (through one-click unsubscribe)",
        "Answered the exit survey: I get too many emails; “Monthly is a lot”",
    ]:
        expect(timeline.filter(has_text=text)).to_have_count(1)
