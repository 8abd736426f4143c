"""Render one newsletter (4 merge tags, 20 tracked links, the demo layout) for 100,000
recipients. Prints one JSON line: the one-off compile + inline cost, and recipients per second
for the per-recipient step (substitution only). Target: >= 20,000 recipients/s on one core.

Run: .venv/bin/python bench/render.py   (no database needed)
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nofailmail.settings")

import django

django.setup()

from templates_app.demo import LAYOUT_HTML  # noqa: E402
from templates_app.rendering import compile_email  # noqa: E402

RECIPIENTS = int(os.environ.get("BENCH_RECIPIENTS", "100000"))

articles = "\n".join(
    f'<h2><a href="https://example.com/articles/{i}?utm_source=newsletter">Article {i}</a></h2>'
    f"<p>A short summary of article {i}, two sentences long. Worth the read.</p>"
    for i in range(20)
)
BODY = f"""<h1>Hello {{{{ first_name|default:"there" }}}}</h1>
<p>News for {{{{ attr.company|default:"your team" }}}} in {{{{ attr.city|default:"your city" }}}}.
We send this to {{{{ email }}}}.</p>
{articles}"""


def main() -> None:
    started = time.perf_counter()
    compiled = compile_email(
        subject='News for {{ first_name|default:"you" }}',
        preheader="Twenty articles this week",
        html_body=BODY,
        layout_html=LAYOUT_HTML,
        track_links=True,
    )
    compile_ms = (time.perf_counter() - started) * 1000
    assert len(compiled.links) == 20, compiled.links

    contexts = [
        {
            "first_name": f"Name{i}" if i % 7 else "",
            "last_name": "Doe",
            "email": f"user{i}@example.com",
            "attr": {"company": f"Co & {i}", "city": "Lyon"} if i % 3 else {},
            "unsubscribe_url": f"https://mail.example.com/r/u/{i}.sig",
            "preferences_url": f"https://mail.example.com/r/p/{i}.sig",
            "view_in_browser_url": f"https://mail.example.com/r/v/{i}.sig",
            "link_urls": [f"https://mail.example.com/c/{i}/{n}.sig" for n in range(20)],
        }
        for i in range(RECIPIENTS)
    ]
    render = compiled.render
    started = time.perf_counter()
    total_bytes = 0
    for context in contexts:
        message = render(context)
        total_bytes += len(message.html)
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "bench": "render",
                "recipients": RECIPIENTS,
                "compile_ms": round(compile_ms, 1),
                "recipients_per_s": round(RECIPIENTS / elapsed),
                "target_recipients_per_s": 20000,
                "avg_html_bytes": total_bytes // RECIPIENTS,
                "merge_tags_in_body": 4,
                "tracked_links": len(compiled.links),
                "note": "single process on a 2-core machine shared with other agents",
            }
        )
    )


if __name__ == "__main__":
    main()
