"""Compile a template version once, render it per recipient by substitution only.

    compiled = compile_version(version, track_links=True)   # once per campaign / send
    compiled.links                                           # destinations, for Link rows
    message = compiled.render(context)                       # per recipient

The context is a plain dict: subscriber fields (first_name, last_name, email), ``attr`` (custom
attributes), the per-recipient URLs (unsubscribe_url, preferences_url, view_in_browser_url)
and, when links are tracked, ``link_urls``: one URL per entry of ``compiled.links``, in order.
Values are HTML-escaped in the HTML part only.
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


class LinkSlot:
    """Stands in a plan where a tracked link's href was: filled from context["link_urls"]."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def value(self, context) -> str:
        return context["link_urls"][self.index]


@dataclass(frozen=True, slots=True)
class CompiledMessage:
    subject: Plan
    preheader: Plan
    html: Plan
    text: Plan
    links: tuple[str, ...] = ()

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
# href="http(s)://..." whose value contains no merge tag: those are the trackable links.
_HREF_RE = re.compile(r"""(\bhref\s*=\s*)(["'])(https?://[^"'{}\s]+)\2""", re.IGNORECASE)
_SLOT = "\x00link:{}\x00"
_SLOT_RE = re.compile("\x00link:(\\d+)\x00")


def html_to_text(source: str) -> str:
    """A readable plain-text part from HTML (merge tags pass through untouched)."""
    text = _BLOCK_END_RE.sub("\n", source)
    text = _TAG_RE.sub("", text)
    lines = [html.unescape(line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def _with_link_slots(html_body: str) -> tuple[str, tuple[str, ...]]:
    links: list[str] = []

    def replace(match: re.Match) -> str:
        url = html.unescape(match.group(3))
        if url not in links:
            links.append(url)
        return f"{match.group(1)}{match.group(2)}{_SLOT.format(links.index(url))}{match.group(2)}"

    return _HREF_RE.sub(replace, html_body), tuple(links)


def _fill_slots(plan: Plan) -> Plan:
    parts: list = []
    for part in plan.parts:
        if part.__class__ is not str or "\x00" not in part:
            parts.append(part)
            continue
        pieces = _SLOT_RE.split(part)
        for i, piece in enumerate(pieces):
            if i % 2:
                parts.append(LinkSlot(int(piece)))
            elif piece:
                parts.append(piece)
    return Plan(parts)


def compile_parts(
    *, subject: str, preheader: str, html_body: str, text_body: str, track_links: bool = False
) -> CompiledMessage:
    text_plan = parse(text_body or html_to_text(html_body))
    links: tuple[str, ...] = ()
    if track_links:
        html_body, links = _with_link_slots(html_body)
    html_plan = parse(html_body)
    if links:
        html_plan = _fill_slots(html_plan)
    return CompiledMessage(
        subject=parse(subject),
        preheader=parse(preheader),
        html=html_plan,
        text=text_plan,
        links=links,
    )


def compile_version(version: TemplateVersion, *, track_links: bool = False) -> CompiledMessage:
    return compile_parts(
        subject=version.subject,
        preheader=version.preheader,
        html_body=version.html_body,
        text_body=version.text_body,
        track_links=track_links,
    )
