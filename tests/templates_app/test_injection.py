"""User-authored text must never reach Django/Jinja templates, settings or Python objects."""

import pytest

from templates_app.merge import MergeSyntaxError
from templates_app.rendering import compile_email
from templates_app.services import reply_prepare, template_create

ATTEMPTS = [
    "{{ settings.SECRET_KEY }}",
    "{% load static %}{% debug %}",
    "{{ ''.__class__.__mro__ }}",
    "{{ first_name.__class__ }}",
    "{{ request.user.password }}",
    "{{ subscriber.email }}",
    "{{ attr.items }}",
    "{{ first_name.upper }}",
    "{{ config.items() }}",
    "{# comment #}",
    "${7*7} #{7*7} {{7*7}}",
]


class Secretive:
    password = "hunter2"
    email = "private@example.com"

    def __getattr__(self, name):
        raise AssertionError(f"attribute {name} was read")


@pytest.mark.parametrize("attempt", ATTEMPTS)
def test_injection_attempts_in_a_body_render_nothing_dangerous(attempt, settings):
    try:
        compiled = compile_email(subject="s", preheader="", html_body=f"<p>{attempt}</p>")
    except MergeSyntaxError:
        return  # refused with a position: also safe
    context = {
        "settings": settings,
        "request": Secretive(),
        "subscriber": Secretive(),
        "config": settings,
        "first_name": "Ada",
        "attr": {"items": {"nested": "dict"}},
    }
    rendered = compiled.render(context)
    for output in (rendered.html, rendered.text):
        assert settings.SECRET_KEY not in output
        assert "hunter2" not in output and "private@example.com" not in output
        assert "class" not in output.lower().replace('class="', "")
        assert "49" not in output


def test_values_typed_by_a_sender_are_never_parsed_as_tags(db, settings):
    template = template_create(
        kind="canned_reply", name="r", subject="About {{ topic }}", html_body="<p>{{ topic }}</p>"
    )
    message = reply_prepare(
        version=template.versions.get(),
        to_email="a@example.com",
        fields={"topic": "{{ settings.SECRET_KEY }} <script>x</script>"},
    )
    assert "{{ settings.SECRET_KEY }} &lt;script&gt;" in message.html
    assert settings.SECRET_KEY not in message.html + message.text + message.subject


HOSTILE = {
    "first_name": '" onmouseover="alert(1)" x="',
    "last_name": "' onload='alert(2)' y='",
    "attr": {"city": '"><script>alert(3)</script>'},
}


def _attributes(html: str) -> list[tuple[str, dict]]:
    from html.parser import HTMLParser

    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Collect().feed(html)
    return found


def test_a_merge_value_inside_an_attribute_cannot_leave_it():
    """Quotes in a value are escaped, so it stays the attribute's value: no new attribute, no
    new tag, whichever quotes the author used (or none)."""
    body = (
        '<p><a href="https://example.com/?n={{ first_name }}" title="{{ first_name }}">a</a>'
        "<a href='https://example.com/' title='{{ last_name }}'>b</a>"
        '<img alt={{ attr.city }} src="https://example.com/a.png"></p>'
    )
    compiled = compile_email(subject="s", preheader="", html_body=body)
    html = compiled.render(HOSTILE).html
    tags = _attributes(html)
    assert [t for t, _ in tags if t == "script"] == []
    links = [a for t, a in tags if t == "a"]
    assert links[0] == {
        "href": 'https://example.com/?n=" onmouseover="alert(1)" x="',
        "title": HOSTILE["first_name"],
    }
    assert links[1] == {"href": "https://example.com/", "title": HOSTILE["last_name"]}
    image = next(a for t, a in tags if t == "img")
    assert image == {"alt": HOSTILE["attr"]["city"], "src": "https://example.com/a.png"}
    assert all(not name.startswith("on") for _t, a in tags for name in a)
