import re

import pytest

from templates_app.merge import MergeSyntaxError
from templates_app.rendering import compile_email, parse_layout, sanitize_body

LAYOUT = """<!doctype html><html><head><title>{{ subject }}</title>
<style>.btn{color:#ffffff;background:#0066cc} @media (max-width:600px){.wrap{width:100%!important}}
@media (prefers-color-scheme: dark){body{background:#111111!important}}</style></head>
<body><table class="wrap" width="600"><tr><td>{{ preheader }}{{ content }}</td></tr></table>
<p>{{ company_name }} · {{ company_postal_address }}<br>
<a href="{{ unsubscribe_url }}">Unsubscribe</a> · <a href="{{ preferences_url }}">Preferences</a>
· <a href="{{ view_in_browser_url }}">View in browser</a></p></body></html>"""

CONTEXT = {
    "first_name": "<Ada>",
    "attr": {"company": "A&B"},
    "unsubscribe_url": "https://nfm.example/r/u/tok?a=1&b=2",
    "preferences_url": "https://nfm.example/r/p/tok",
    "view_in_browser_url": "https://nfm.example/r/v/tok",
}


def test_the_body_is_wrapped_in_the_layout_with_the_company_footer(settings):
    settings.COMPANY_NAME = "Acme & Sons"
    settings.COMPANY_POSTAL_ADDRESS = "5 Rue X, 75002 Paris"
    compiled = compile_email(
        subject="Hello", preheader="", html_body="<p>Body here</p>", layout_html=LAYOUT
    )
    html = compiled.render(CONTEXT).html
    assert html.startswith("<!DOCTYPE html>")
    assert re.search(r'<table class="wrap" width="600"><tr><td>\s*<p>Body here</p>', html)
    assert "Acme &amp; Sons · 5 Rue X, 75002 Paris" in html
    assert 'href="https://nfm.example/r/u/tok?a=1&amp;b=2"' in html


def test_css_is_inlined_once_and_media_queries_are_kept():
    compiled = compile_email(
        subject="s",
        preheader="",
        html_body='<a class="btn" href="https://x.example">Go</a>',
        layout_html=LAYOUT,
    )
    html = compiled.render(CONTEXT).html
    assert 'style="color:#fff; background:#06c"' in html  # cssutils shortens colours
    assert "@media (max-width: 600px)" in html
    assert "prefers-color-scheme: dark" in html


def test_merge_tags_survive_sanitizing_and_inlining_and_values_are_escaped():
    compiled = compile_email(
        subject="Hi {{ first_name }}",
        preheader="",
        html_body='<p class="btn">Hello {{ first_name|default:"there" }} of '
        '{{ attr.company|default:"a <b> team" }}</p>',
        layout_html=LAYOUT,
    )
    assert {"first_name", "attr.company"} <= {t.path for t in compiled.html.tags}
    html = compiled.render(CONTEXT).html
    assert "Hello &lt;Ada&gt; of A&amp;B</p>" in html
    assert "<title>Hi &lt;Ada&gt;</title>" in html
    assert "a &lt;b&gt; team" in compiled.render({}).html


def test_tags_inside_the_layout_css_do_not_break_parsing_of_nested_rules():
    plan = parse_layout("<style>@media x{.a{b:c}}</style>{{ content }}")
    assert [t.path for t in plan.tags] == ["content"]


def test_a_malformed_tag_in_the_body_reports_its_authored_position():
    with pytest.raises(MergeSyntaxError) as info:
        compile_email(subject="s", preheader="", html_body="<p>ok</p>\n<p>{{ bad name }}</p>")
    assert (info.value.line, info.value.column) == (2, 4)


def test_the_preheader_is_hidden_text_at_the_top_of_the_body():
    compiled = compile_email(
        subject="s",
        preheader='Inside: {{ first_name|default:"friend" }} & more',
        html_body="<p>Body</p>",
        layout_html=LAYOUT,
    )
    html = compiled.render({}).html
    hidden = re.search(r'<div style="display:none[^"]*">(.*?)</div>', html, re.S)
    assert hidden and hidden.group(1).startswith("Inside: friend &amp; more")
    assert html.index("Inside: friend") < html.index("<p>Body</p>")
    # ... and it is not in the text part.
    assert "Inside" not in compiled.render({}).text


def test_tracked_links_skip_opt_outs_and_per_recipient_urls():
    compiled = compile_email(
        subject="s",
        preheader="",
        html_body='<a href="https://a.example/x?y=1&amp;z=2">A</a>'
        '<a href="https://b.example" data-notrack>B</a>'
        '<a href="https://a.example/x?y=1&amp;z=2">A again</a>'
        '<a href="https://c.example/{{ attr.company }}">C</a>',
        layout_html=LAYOUT,
        track_links=True,
    )
    assert compiled.links == ("https://a.example/x?y=1&z=2",)
    html = compiled.render({**CONTEXT, "link_urls": ["https://t.example/1?s=a&h=b"]}).html
    assert html.count('href="https://t.example/1?s=a&amp;h=b"') == 2
    assert '<a href="https://b.example">B</a>' in html  # opt-out kept, attribute removed
    assert "data-notrack" not in html
    assert 'href="https://c.example/A&amp;B"' in html
    assert 'href="https://nfm.example/r/u/tok?a=1&amp;b=2"' in html
    assert 'href="https://nfm.example/r/v/tok"' in html


def test_the_text_part_is_generated_with_links_and_footer():
    compiled = compile_email(
        subject="s",
        preheader="",
        html_body='<h1>News</h1><p>Read <a href="https://x.example/a">the post</a></p>',
        layout_html=LAYOUT,
    )
    text = compiled.render(CONTEXT).text
    assert "News\nRead the post (https://x.example/a)" in text
    assert "Unsubscribe (https://nfm.example/r/u/tok?a=1&b=2)" in text
    assert "<" not in text.replace("<Ada>", "")


def test_an_explicit_text_body_gets_the_unsubscribe_footer():
    compiled = compile_email(
        subject="s",
        preheader="",
        html_body="<p>x</p>",
        text_body='Hello {{ first_name|default:"there" }}',
        layout_html=LAYOUT,
    )
    text = compiled.render(CONTEXT).text
    assert text.startswith("Hello <Ada>\n\n--\n")
    assert "Unsubscribe: https://nfm.example/r/u/tok?a=1&b=2" in text


def test_premailer_never_fetches_remote_stylesheets(monkeypatch):
    import requests

    def refuse(*args, **kwargs):
        raise AssertionError("network access during compile")

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(requests.Session, "get", refuse)
    layout = '<html><head><link rel="stylesheet" href="https://evil.example/x.css"></head>'
    layout += "<body>{{ content }}</body></html>"
    compiled = compile_email(subject="s", preheader="", html_body="<p>x</p>", layout_html=layout)
    assert "<p>x</p>" in compiled.render({}).html


def test_sanitizer_keeps_outlook_conditional_comments_and_drops_scripts():
    source = (
        '<!--[if mso]><table width="600"><tr><td><![endif]-->'
        '<p onclick="steal()" style="color:red">Hi</p><script>alert(1)</script>'
        '<a href="javascript:alert(1)">x</a><!-- drafting note: ask Bob -->'
        "<!--[if !mso]><!--><div>modern</div><!--<![endif]-->"
        "<!--[if mso]><script>alert(2)</script></td></tr></table><![endif]-->"
    )
    cleaned = sanitize_body(source)
    assert '<!--[if mso]><table width="600"><tr><td><![endif]-->' in cleaned
    assert "<!--[if !mso]><!--><div>modern</div><!--<![endif]-->" in cleaned
    assert "<!--[if mso]></td></tr></table><![endif]-->" in cleaned
    assert '<p style="color:red">Hi</p>' in cleaned
    for bad in ("script", "onclick", "javascript:", "drafting note"):
        assert bad not in cleaned


def test_conditional_comments_survive_the_whole_pipeline():
    compiled = compile_email(
        subject="s",
        preheader="",
        html_body="<!--[if mso]><table><tr><td><![endif]--><p>x</p>"
        "<!--[if mso]></td></tr></table><![endif]-->",
        layout_html=LAYOUT,
    )
    html = compiled.render({}).html
    assert "<!--[if mso]><table><tr><td><![endif]-->" in html
    assert "<!--[if mso]></td></tr></table><![endif]-->" in html


def test_outlook_vml_buttons_are_tracked_like_their_html_twin():
    compiled = compile_email(
        subject="s",
        preheader="",
        html_body='<!--[if mso]><v:roundrect href="https://x.example/go">Go</v:roundrect>'
        '<![endif]--><!--[if !mso]><!--><a href="https://x.example/go">Go</a><!--<![endif]-->',
        layout_html=LAYOUT,
        track_links=True,
    )
    assert compiled.links == ("https://x.example/go",)
    html = compiled.render({**CONTEXT, "link_urls": ["https://t.example/1"]}).html
    assert '<v:roundrect href="https://t.example/1">' in html
    assert '<a href="https://t.example/1">' in html


def test_list_items_become_dashed_lines_in_the_text_part():
    compiled = compile_email(
        subject="s", preheader="", html_body="<ul><li>One</li><li>Two</li></ul>"
    )
    assert "- One\n- Two" in compiled.render({}).text
