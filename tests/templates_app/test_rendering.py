from templates_app.rendering import compile_email, html_to_text


def test_tracked_links_become_slots_filled_per_recipient():
    compiled = compile_email(
        subject="Hi {{ first_name }}",
        preheader="",
        html_body='<a href="https://a.example/x?y=1&amp;z=2">A</a> <a href="https://b.example">B</a>'
        ' <a href="https://a.example/x?y=1&amp;z=2">A again</a>'
        ' <a href="{{ unsubscribe_url }}">u</a>',
        text_body="",
        layout_html="",
        track_links=True,
    )
    assert compiled.links == ("https://a.example/x?y=1&z=2", "https://b.example")
    message = compiled.render(
        {
            "first_name": "Ada",
            "unsubscribe_url": "https://s/u?t=1&x=2",
            "link_urls": ["https://t/1?a=1&b=2", "https://t/2"],
        }
    )
    assert message.subject == "Hi Ada"
    assert (
        '<a href="https://t/1?a=1&amp;b=2">A</a> <a href="https://t/2">B</a>'
        ' <a href="https://t/1?a=1&amp;b=2">A again</a> <a href="https://s/u?t=1&amp;x=2">u</a>'
    ) in message.html


def test_untracked_compilation_keeps_hrefs():
    compiled = compile_email(
        subject="s",
        preheader="",
        html_body='<a href="https://a.example">A</a>',
        text_body="",
        layout_html="",
    )
    assert compiled.links == ()
    assert '<a href="https://a.example">A</a>' in compiled.render({}).html


def test_text_part_is_generated_from_html():
    assert html_to_text("<h1>Title</h1><p>Hello &amp; welcome<br>{{ first_name }}</p>") == (
        "Title\nHello & welcome\n{{ first_name }}\n"
    )
