import pytest

from subscribers.models import Subscriber
from templates_app.lint import (
    BLOCKING,
    WARNING,
    find_placeholders,
    has_blocking,
    lint_template,
    recipients_missing_fields,
)
from templates_app.rendering import compile_email
from tests.support.factories import SubscriberFactory

LAYOUT = (
    "<html><body>{{ content }}<p>{{ company_name }}, {{ company_postal_address }} "
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
)


def lint(**overrides):
    fields = {
        "kind": "newsletter",
        "subject": "Our March news",
        "preheader": "Three things we shipped",
        "html_body": '<p>Hello {{ first_name|default:"there" }}</p>',
        "text_body": "",
        "layout_html": LAYOUT,
    }
    fields.update(overrides)
    return lint_template(**fields)


def codes(findings):
    return [f.code for f in findings]


def test_a_clean_newsletter_has_no_findings():
    assert lint() == []


@pytest.mark.parametrize(
    "placeholder",
    [
        "[name]",
        "[Your name]",
        "[topic]",
        "{name}",
        "%NAME%",
        "*|FNAME|*",
        "&lt;&lt;name&gt;&gt;",
        "TODO",
        "Lorem ipsum",
    ],
)
def test_drafting_placeholders_are_blocking_with_their_position(placeholder):
    findings = lint(html_body=f"<p>Hello</p>\n<p>Dear {placeholder}, welcome</p>")
    [finding] = [f for f in findings if f.code == "placeholder"]
    assert finding.severity == BLOCKING
    assert (finding.field, finding.line, finding.column) == ("html_body", 2, 9)
    assert "Replace it" in finding.fix


def test_placeholders_are_found_in_subject_preheader_and_text_too():
    findings = lint(subject="News for [name]", preheader="%FIRST%", text_body="Hi *|FNAME|*")
    assert {(f.field, f.code) for f in findings if f.code == "placeholder"} == {
        ("subject", "placeholder"),
        ("preheader", "placeholder"),
        ("text_body", "placeholder"),
    }


def test_merge_tags_conditional_comments_css_and_links_are_not_placeholders():
    text = (
        '{{ first_name|default:"x" }} <!--[if mso]><table><![endif]--> '
        "<style>.a{color:red}</style> see [the docs](https://x.example) and footnote [1]"
    )
    assert find_placeholders(text) == []


def test_unknown_tags_are_blocking_in_newsletters():
    [finding] = [
        f for f in lint(html_body="<p>\n  {{ frist_name }}</p>") if f.code == "unknown-tag"
    ]
    assert finding.severity == BLOCKING
    assert (finding.line, finding.column) == (2, 3)
    assert "attr.<key>" in finding.fix


def test_unknown_plain_names_are_adhoc_fields_in_canned_replies():
    findings = lint(kind="canned_reply", html_body="<p>About {{ topic }} {{ a.b }}</p>")
    assert [f.message for f in findings if f.code == "unknown-tag"] == [
        "Unknown merge tag {{ a.b }}: it would render empty."
    ]


def test_a_malformed_tag_is_blocking_with_line_and_column():
    [finding] = [f for f in lint(html_body="ok\n<p>{{ first_name|shout }}</p>") if f.blocking]
    assert (finding.code, finding.line, finding.column) == ("merge-syntax", 2, 4)


def test_tags_without_default_are_warnings_in_the_editor():
    findings = lint(html_body="<p>{{ first_name }} {{ attr.city }} {{ email }}</p>")
    assert [(f.code, f.severity) for f in findings] == [("no-default", WARNING)] * 3


@pytest.mark.django_db
def test_tags_without_default_empty_for_some_recipients_are_blocking():
    SubscriberFactory(email="a@example.com", first_name="Ann", attributes={"city": "Lyon"})
    SubscriberFactory(email="b@example.com", first_name="", attributes={"city": ""})
    SubscriberFactory(email="c@example.com", first_name="Cy", attributes={})
    findings = lint(
        html_body='<p>{{ first_name }} {{ attr.city }} {{ last_name|default:"" }}</p>',
        audience=Subscriber.objects.all(),
    )
    assert [(f.code, f.severity, f.message) for f in findings] == [
        (
            "empty-for-recipients",
            BLOCKING,
            "{{ first_name }} is empty for 1 recipient and has no default.",
        ),
        (
            "empty-for-recipients",
            BLOCKING,
            "{{ attr.city }} is empty for 2 recipients and has no default.",
        ),
    ]
    full = lint(
        html_body="<p>{{ first_name }}</p>",
        audience=Subscriber.objects.exclude(email="b@example.com"),
    )
    assert full == []


def test_the_audience_can_be_plain_contexts():
    findings = lint(
        html_body="<p>{{ first_name }}</p>",
        audience=[{"first_name": "A"}, {"first_name": ""}, {}],
    )
    assert [f.message for f in findings] == [
        "{{ first_name }} is empty for 2 recipients and has no default."
    ]


def test_recipients_missing_fields_streams_over_contexts():
    compiled = compile_email(
        subject="{{ first_name }}",
        preheader="",
        html_body='{{ attr.company }} {{ last_name|default:"x" }} {{ unsubscribe_url }}',
    )
    contexts = iter(
        [
            {"email": "a@x", "first_name": "A", "attr": {"company": "C"}},
            {"email": "b@x", "first_name": "", "attr": {}},
            {"email": "c@x", "first_name": "C"},
        ]
    )
    result = [(c["email"], missing) for c, missing in recipients_missing_fields(compiled, contexts)]
    assert result == [("b@x", ("first_name", "attr.company")), ("c@x", ("attr.company",))]


def test_a_newsletter_needs_an_unsubscribe_link_and_a_postal_address(settings):
    findings = lint(layout_html="", html_body="<p>Hi</p>")
    assert {"missing-unsubscribe", "missing-postal-address"} <= set(codes(findings))
    assert all(f.blocking for f in findings if f.code.startswith("missing-"))
    settings.COMPANY_POSTAL_ADDRESS = ""
    assert "missing-postal-address" in codes(lint())
    # Canned replies are one-to-one mail: no footer needed.
    assert lint(kind="canned_reply", layout_html="", preheader="") == []


def test_a_literal_postal_address_in_the_body_is_enough(settings):
    body = f'<p>{settings.COMPANY_POSTAL_ADDRESS} <a href="{{{{ unsubscribe_url }}}}">u</a></p>'
    assert codes(lint(layout_html="", html_body=body)) == []


def test_images_without_alt_text_are_warnings():
    findings = lint(html_body='<p>x</p>\n<img src="https://x.example/a.png">')
    [finding] = findings
    assert (finding.code, finding.severity, finding.line, finding.column) == (
        "image-without-alt",
        WARNING,
        2,
        1,
    )
    assert lint(html_body='<img src="https://x.example/a.png" alt="Logo">') == []


def test_http_links_are_warnings():
    [finding] = lint(html_body='<a href="http://x.example/a">x</a>')
    assert (finding.code, finding.severity, finding.column) == ("insecure-link", WARNING, 10)


def test_empty_or_over_long_subjects_and_missing_preheaders():
    assert [(f.code, f.severity) for f in lint(subject="  ")] == [("subject-empty", BLOCKING)]
    assert [(f.code, f.severity) for f in lint(subject="x" * 79)] == [("subject-too-long", WARNING)]
    assert [(f.code, f.severity) for f in lint(preheader="")] == [("preheader-missing", WARNING)]


def test_a_layout_without_content_is_blocking():
    findings = lint(layout_html=LAYOUT.replace("{{ content }}", ""))
    assert "layout-without-content" in codes(findings)
    assert has_blocking(findings)
