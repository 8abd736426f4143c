import importlib.util
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from campaigns.preflight import (
    BLOCKING,
    WARNING,
    link_findings,
    personalization_findings,
    run_preflight,
    size_findings,
    spam_findings,
)
from subscribers.models import Subscriber
from tests.support.factories import CampaignFactory, TemplateFactory, TopicFactory, make_audience


def _codes(findings):
    return {f.code: f for f in findings}


def test_personalization_counts_every_recipient_who_would_get_an_empty_field(db):
    topic, subs = make_audience(5)
    Subscriber.objects.filter(pk__in=[subs[0].pk, subs[1].pk]).update(first_name="")
    Subscriber.objects.filter(pk=subs[2].pk).update(attributes={"company": "ACME"})
    template = TemplateFactory(
        html_body="<p>Hi {{ first_name }} of {{ attr.company }}, {{ last_name|default:'' }}</p>"
    )
    findings = personalization_findings(CampaignFactory(topic=topic, template=template))
    by_field = {f.message.split("{{ ")[1].split(" }}")[0]: f for f in findings}
    assert by_field["first_name"].message.startswith("2 recipients")
    assert by_field["first_name"].details == ["user0@example.org", "user1@example.org"]
    assert by_field["attr.company"].message.startswith("4 recipients")
    assert "last_name" not in by_field  # it has a default
    assert all(f.severity == WARNING for f in findings)


def test_a_field_nobody_has_is_blocking(db):
    topic, _ = make_audience(1)
    template = TemplateFactory(html_body="<p>Hi {{ nickname }}</p>")
    (finding,) = personalization_findings(CampaignFactory(topic=topic, template=template))
    assert finding.severity == BLOCKING and "nickname" in finding.message


@pytest.fixture
def web():
    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self):
            if self.path == "/moved":
                self.send_response(301)
                self.send_header("Location", "http://10.0.0.1/internal")
            else:
                self.send_response(200 if self.path == "/ok" else 404)
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_link_check_reports_each_link_that_answers_an_error(db, web, settings):
    settings.LINK_CHECK_ALLOW_PRIVATE = True  # the test site is on loopback
    topic, _ = make_audience(1)
    template = TemplateFactory(
        html_body=f'<a href="{web}/ok">ok</a> <a href="{web}/gone">gone</a> '
        f'<a href="{web}/moved">m</a>'
    )
    (finding,) = link_findings(CampaignFactory(topic=topic, template=template))
    assert finding.code == "links.broken" and finding.severity == BLOCKING
    assert finding.details == [f"{web}/gone — HTTP 404"]


def test_links_to_private_addresses_are_not_fetched(db, web):
    topic, _ = make_audience(1)
    template = TemplateFactory(html_body=f'<a href="{web}/ok">ok</a>')
    (finding,) = link_findings(CampaignFactory(topic=topic, template=template))
    assert finding.code == "links.private" and finding.details == [f"{web}/ok"]


def test_offline_the_link_check_says_clearly_that_it_did_not_check(db):
    topic, _ = make_audience(1)
    template = TemplateFactory(
        html_body='<a href="http://nowhere.invalid/a">a</a> <a href="https://nothing.invalid/">b</a>'
    )
    (finding,) = link_findings(CampaignFactory(topic=topic, template=template), timeout=2)
    assert finding.code == "links.offline" and finding.severity == WARNING
    assert "NOT checked" in finding.message and len(finding.details) == 2


def test_a_clean_message_has_no_spam_points():
    assert (
        spam_findings(
            subject="Our October news",
            html='<p>Hello</p><a href="U">x</a>',
            text="Hello",
            unsubscribe_url="U",
        )
        == []
    )


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"subject": "BIG NEWS TODAY"}, "capital letters"),
        ({"subject": "Hurry!!!"}, "run of !"),
        ({"html": '<p>Act now, click here</p><a href="U">x</a>'}, "act now"),
        ({"html": '<img src="a.png"><img src="b.png"><p>Hi</p><a href="U">x</a>'}, "Image-heavy"),
        ({"text": ""}, "No plain-text part"),
        ({"html": '<a href="https://bit.ly/x">x</a><a href="U">u</a>'}, "bit.ly"),
        ({"html": "<p>Hello</p>"}, "No unsubscribe link"),
    ],
)
def test_each_spam_point_comes_with_its_reason(kwargs, reason):
    args = {
        "subject": "News",
        "html": '<p>Hello there</p><a href="U">x</a>',
        "text": "Hello",
        "unsubscribe_url": "U",
        **kwargs,
    }
    findings = spam_findings(**args)
    assert any(reason in f.message and f.points > 0 for f in findings), findings


def test_a_high_spam_score_is_blocking():
    findings = spam_findings(
        subject="FREE MONEY!!!", html='<img src="x"><p>Act now</p>', text="", unsubscribe_url="U"
    )
    score = _codes(findings)["spam.score"]
    assert score.severity == BLOCKING and score.points >= 5


def test_messages_gmail_would_clip_are_flagged():
    assert size_findings("x" * 1000) == []
    (finding,) = size_findings("x" * (103 * 1024))
    assert finding.code == "size.clipped" and "102 KB" in finding.message


def test_the_whole_preflight_blocks_an_empty_audience_and_passes_a_good_campaign(db):
    topic, _ = make_audience(2)
    good = _codes(run_preflight(CampaignFactory(topic=topic), check_links=False))
    assert not [f for f in good.values() if f.severity == BLOCKING]

    empty = CampaignFactory(topic=TopicFactory(name="Nobody", slug="nobody"))
    assert _codes(run_preflight(empty, check_links=False))["audience.empty"].severity == BLOCKING


@pytest.mark.skipif(
    not importlib.util.find_spec("templates_app.lint"),
    reason="templates_app.lint arrives with the templates capability",
)
def test_template_lint_findings_appear_in_the_preflight(db):
    from campaigns.preflight import lint_findings

    topic, _ = make_audience(1)
    template = TemplateFactory(
        html_body="<p>Hi {{ first_name }}</p><a href=\"javascript:alert(1)\">x</a><img src='x.png'>"
    )
    findings = lint_findings(CampaignFactory(topic=topic, template=template))
    assert findings and all(f.code.startswith("lint.") for f in findings)
    assert {f.severity for f in findings} <= {BLOCKING, WARNING}


def test_a_broken_link_blocks_scheduling(db, web, settings, editor_user):
    from campaigns.models import CampaignTransitionError
    from campaigns.services import campaign_schedule

    settings.LINK_CHECK_ALLOW_PRIVATE = True
    topic, _ = make_audience(1)
    campaign = CampaignFactory(
        topic=topic, template=TemplateFactory(html_body=f'<a href="{web}/x">x</a>')
    )
    with pytest.raises(CampaignTransitionError, match="1 link answers an error"):
        campaign_schedule(campaign=campaign, user=editor_user, check_links=True)
