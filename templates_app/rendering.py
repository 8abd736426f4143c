"""Compile a template version once, render it per recipient by substitution only.

    compiled = compile_version(version)            # once per campaign / send
    message = compiled.render(context)             # per recipient: subject, preheader, html, text

The context is a plain dict (see ``recipient_context`` in the sending code): subscriber fields,
``attr`` (custom attributes) and the per-recipient URLs. Values are HTML-escaped in the HTML
part only.
"""

import html
import re
from dataclasses import dataclass

from .merge import Plan, parse
from .models import TemplateVersion


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    subject: str
    preheader: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class CompiledMessage:
    subject: Plan
    preheader: Plan
    html: Plan
    text: Plan

    def render(self, context) -> RenderedMessage:
        return RenderedMessage(
            subject=self.subject.render(context),
            preheader=self.preheader.render(context),
            html=self.html.render(context, escape=True),
            text=self.text.render(context),
        )

    @property
    def plans(self) -> tuple[Plan, ...]:
        return (self.subject, self.preheader, self.html, self.text)


_TAG_RE = re.compile(r"<[^>]+>")
_BLOCK_END_RE = re.compile(r"</(p|div|h[1-6]|li|tr|table)>|<br\s*/?>", re.IGNORECASE)


def html_to_text(source: str) -> str:
    """A readable plain-text part from HTML (merge tags pass through untouched)."""
    text = _BLOCK_END_RE.sub("\n", source)
    text = _TAG_RE.sub("", text)
    lines = [html.unescape(line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def compile_parts(
    *, subject: str, preheader: str, html_body: str, text_body: str
) -> CompiledMessage:
    return CompiledMessage(
        subject=parse(subject),
        preheader=parse(preheader),
        html=parse(html_body),
        text=parse(text_body or html_to_text(html_body)),
    )


def compile_version(version: TemplateVersion) -> CompiledMessage:
    return compile_parts(
        subject=version.subject,
        preheader=version.preheader,
        html_body=version.html_body,
        text_body=version.text_body,
    )
