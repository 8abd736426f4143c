import pytest

from templates_app.merge import MergeSyntaxError, parse


def test_it_substitutes_fields_and_dotted_attributes():
    plan = parse("Hi {{ first_name }} from {{ attr.company }}!")
    assert plan.render({"first_name": "Ada", "attr": {"company": "Acme"}}) == "Hi Ada from Acme!"


def test_default_applies_to_missing_and_empty_values():
    plan = parse('Hi {{ first_name|default:"there" }}')
    assert plan.render({}) == "Hi there"
    assert plan.render({"first_name": ""}) == "Hi there"
    assert plan.render({"first_name": "Bo"}) == "Hi Bo"


def test_filters_chain_and_quoted_arguments_may_hold_pipes_and_quotes():
    plan = parse("""{{ name|default:"a|b \\"c\\""|upper }}""")
    assert plan.render({}) == 'A|B "C"'


def test_html_rendering_escapes_values_but_not_the_authored_text():
    plan = parse("<p>{{ first_name }}</p>")
    assert plan.render({"first_name": "<script>x</script>"}, escape=True) == (
        "<p>&lt;script&gt;x&lt;/script&gt;</p>"
    )


def test_missing_lists_tags_that_would_render_empty():
    plan = parse('{{ first_name }} {{ last_name|default:"" }} {{ city|default:"Paris" }}')
    assert [t.path for t in plan.missing({})] == ["first_name", "last_name"]


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("Hello\n  {{ first name }}", 2, 3, "is not a field name"),
        ("{{ first_name", 1, 1, "Unclosed tag"),
        ("ok {{ }}", 1, 4, "Empty tag"),
        ("{{ x|shout }}", 1, 1, "Unknown filter 'shout'"),
        ("{{ x|default }}", 1, 1, "needs a value"),
        ("{% load static %}", 1, 1, "Block tags"),
        ("a\nb {# hidden #}", 2, 3, "Comments"),
        ("hi first_name }}", 1, 15, "without a matching"),
        ("{{ __class__ }}", 1, 1, "underscore"),
    ],
)
def test_malformed_tags_report_line_and_column(text, line, column, fragment):
    with pytest.raises(MergeSyntaxError) as info:
        parse(text)
    assert info.value.line == line
    assert info.value.column == column
    assert fragment in info.value.message


@pytest.mark.parametrize(
    "text",
    ["{{ settings.SECRET_KEY }}", "{{ ''.__class__ }}", "{{ request.user.password }}"],
)
def test_injection_attempts_render_nothing_dangerous(text, settings):
    try:
        plan = parse(text)
    except MergeSyntaxError:
        return
    # Lookups only walk dicts: objects in the context are never traversed.
    rendered = plan.render({"settings": settings, "request": object()})
    assert rendered == ""
    assert settings.SECRET_KEY not in rendered


def test_html_rendering_escapes_both_quote_characters():
    # Values may land inside attributes of either quote: "..." or '...'.
    plan = parse("<a title=\"{{ first_name }}\" data-x='{{ last_name }}'>")
    rendered = plan.render({"first_name": 'a" b="c', "last_name": "d' e='f"}, escape=True)
    assert rendered == "<a title=\"a&quot; b=&quot;c\" data-x='d&#x27; e=&#x27;f'>"
