"""Compile a template version once, render it per recipient by substitution only.

    compiled = compile_version(version, track_links=True)   # once per campaign / send
    compiled.links                                           # destinations, for Link rows
    message = compiled.render(context)                       # per recipient

The context is a plain dict: subscriber fields (first_name, last_name, email, language,
topics), ``attr`` (custom attributes, as text), the per-recipient URLs (unsubscribe_url,
preferences_url, view_in_browser_url) and, when links are tracked, ``link_urls``: one URL per
entry of ``compiled.links``, in order. Values are HTML-escaped in the HTML part only. The
recipient's part always comes from ``fields.recipient_contexts`` / ``recipient_context``;
``fields.subscriber_context`` adds the URLs for previews and transactional mail.

``compile_version`` produces the final email: the authored body sanitized by nh3 (Outlook
conditional comments kept), wrapped in the version's layout snapshot (``{{ content }}``,
``{{ preheader }}`` as hidden text, company name and postal address filled once), CSS inlined
by premailer with the network off, a text part generated when none was written, and tracked
links turned into slots (never the per-recipient URLs, never an <a data-notrack>). Merge tags
cross nh3 and premailer as opaque placeholders, so neither tool can mangle them.
"""

import html
import logging
import re
import secrets
from dataclasses import dataclass

import nh3
from django.conf import settings
from premailer import Premailer

from .merge import MergeSyntaxError, Plan, Tag, parse
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
_SLOT = "\x00link:{}\x00"
_SLOT_RE = re.compile("\x00link:(\\d+)\x00")


def html_to_text(source: str) -> str:
    """A readable plain-text part from HTML (merge tags pass through untouched)."""
    text = _BLOCK_END_RE.sub("\n", source)
    text = _TAG_RE.sub("", text)
    lines = [html.unescape(line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


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


# --- The final email: sanitize, wrap in the layout, inline CSS once, then plan. -------------

# What authored bodies may contain: the HTML email needs (tables, inline styles, images,
# presentational attributes), nothing that runs (no script, no event handlers, no forms).
BODY_TAGS = set(nh3.ALLOWED_TAGS) | {"font"}
_ATTRS_ALL = {
    "style",
    "class",
    "align",
    "valign",
    "width",
    "height",
    "bgcolor",
    "border",
    "dir",
    "lang",
    "title",
    "role",
    "id",
}
BODY_ATTRIBUTES = {
    "*": _ATTRS_ALL,
    "a": {"href", "target", "name", "data-notrack"},
    "img": {"src", "alt"},
    "table": {"cellpadding", "cellspacing", "summary"},
    "td": {"colspan", "rowspan", "nowrap"},
    "th": {"colspan", "rowspan", "scope"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type"},
    "ul": {"type"},
}
_COMMENT_RE = re.compile(r"<!--(.*?)-->", re.DOTALL)
# Outlook reads "conditional comments" (ghost tables for a fixed width, VML buttons): keep
# those, drop every other comment (they can leak drafting notes to recipients).
_CONDITIONAL_RE = re.compile(r"\A\[if [^\]]+\]>|\A<!\[endif\]\Z|\A\[if [^\]]+\]><!\Z", re.I)
# Outlook does not run scripts, but a conditional comment must not smuggle any either.
_DANGEROUS_BLOCK_RE = re.compile(
    r"<\s*(script|iframe|object|style|textarea)\b.*?<\s*/\s*\1\s*>", re.I | re.S
)
_DANGEROUS_IN_COMMENT_RE = re.compile(
    r"<\s*/?\s*(script|iframe|object|embed|form|base|meta|link)\b[^>]*>|\son\w+\s*=|javascript:",
    re.I,
)


def sanitize_body(source: str) -> str:
    """nh3 with an email-shaped allow-list; Outlook conditional comments survive."""
    cleaned = nh3.clean(
        source,
        tags=BODY_TAGS,
        attributes=BODY_ATTRIBUTES,
        clean_content_tags={"script", "style", "iframe", "object", "template", "textarea"},
        url_schemes={"http", "https", "mailto", "tel"},
        strip_comments=False,
        link_rel=None,
    )

    def keep_conditional(match: re.Match) -> str:
        inner = match.group(1)
        if not _CONDITIONAL_RE.match(inner.strip()) and not inner.startswith("<![endif]"):
            return ""
        inner = _DANGEROUS_BLOCK_RE.sub("", inner)
        return "<!--" + _DANGEROUS_IN_COMMENT_RE.sub("", inner) + "-->"

    return _COMMENT_RE.sub(keep_conditional, cleaned)


DEFAULT_LAYOUT = (
    '<!doctype html><html><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
    '<body style="margin:0;padding:16px;font-family:Arial,Helvetica,sans-serif;'
    'font-size:16px;line-height:1.5;">{{ preheader }}{{ content }}</body></html>'
)
_PREHEADER_OPEN = (
    '<div style="display:none;max-height:0;max-width:0;overflow:hidden;opacity:0;'
    'mso-hide:all;font-size:1px;line-height:1px;color:transparent;">'
)
# The filler keeps mail clients from padding the inbox snippet with the body's first words.
PREHEADER_HTML = _PREHEADER_OPEN + "{}" + "&#847;&zwnj;&nbsp;" * 30 + "</div>"


class _Placeholders:
    """Stand-ins for merge tags while the HTML goes through nh3 and premailer: plain letters
    and digits, so neither tool escapes, splits or rewrites them."""

    def __init__(self):
        self.nonce = secrets.token_hex(4)
        self.tags: list[Tag] = []
        self.pattern = re.compile(rf"nfmtag(\d+)x{self.nonce}")

    def add(self, tag: Tag) -> str:
        self.tags.append(tag)
        return f"nfmtag{len(self.tags) - 1}x{self.nonce}"

    def protect(self, plan: Plan, *, escape_literals: bool = False) -> str:
        return "".join(
            (html.escape(part, quote=False) if escape_literals else part)
            if part.__class__ is str
            else self.add(part)
            for part in plan.parts
        )


_STYLE_BLOCK_RE = re.compile(r"(<style\b.*?</style>)", re.IGNORECASE | re.DOTALL)


def parse_layout(text: str) -> Plan:
    """Like ``parse``, but CSS in <style> blocks is literal (``}}`` closes nested CSS rules)."""
    parts: list = []
    offset = 0
    for i, segment in enumerate(_STYLE_BLOCK_RE.split(text)):
        if i % 2:
            parts.append(segment)
        elif segment:
            try:
                parts.extend(parse(segment).parts)
            except MergeSyntaxError as exc:
                line = text.count("\n", 0, offset)
                column = exc.column
                if exc.line == 1:
                    column += offset - (text.rfind("\n", 0, offset) + 1)
                raise MergeSyntaxError(exc.message, exc.line + line, column) from None
        offset += len(segment)
    return Plan(parts)


def _layout_document(layout_html: str, *, body: str, preheader: str, subject: str, ph) -> str:
    layout = parse_layout(layout_html or DEFAULT_LAYOUT)
    compile_time = {
        "content": body,
        "preheader": PREHEADER_HTML.format(preheader) if preheader else "",
        "subject": subject,
        "company_name": html.escape(settings.COMPANY_NAME or ""),
        "company_postal_address": html.escape(settings.COMPANY_POSTAL_ADDRESS or ""),
    }
    if (
        not any(isinstance(part, Tag) and part.path == "preheader" for part in layout.parts)
        and preheader
    ):
        compile_time["content"] = compile_time["preheader"] + body
    out = []
    for part in layout.parts:
        if part.__class__ is str:
            out.append(part)
        elif part.path in compile_time:
            out.append(compile_time[part.path])
        else:
            out.append(ph.add(part))
    return "".join(out)


def inline_css(document: str) -> str:
    """premailer, once per version. Network off: a <link> to a remote stylesheet is never
    fetched (a template must not make the server request arbitrary URLs)."""
    inlined = Premailer(
        document,
        allow_network=False,
        allow_loading_external_files=False,
        disable_link_rewrites=True,
        strip_important=False,
        keep_style_tags=False,
        cssutils_logging_level=logging.CRITICAL,
        disable_validation=True,
    ).transform()
    # lxml drops the doctype; without it some clients render in quirks mode.
    return (
        inlined
        if inlined.lstrip().lower().startswith("<!doctype")
        else ("<!DOCTYPE html>\n" + inlined)
    )


# <v:roundrect href=...> is the Outlook (VML) twin of a bulletproof button: track it too.
_A_RE = re.compile(r"<(?:a|v:roundrect)\b[^>]*>", re.IGNORECASE)
_ATTR_HREF_RE = re.compile(r"""(\bhref\s*=\s*)(["'])([^"']*)\2""", re.IGNORECASE)
_NOTRACK_RE = re.compile(r"""\s+data-notrack(?:\s*=\s*(["'])[^"']*\1)?""", re.IGNORECASE)


def _slot_links(document: str, ph: _Placeholders, *, track: bool) -> tuple[str, tuple[str, ...]]:
    """Tracked hrefs become slots; data-notrack links and per-recipient URLs stay as they are."""
    links: list[str] = []

    def replace(match: re.Match) -> str:
        a_tag = match.group(0)
        notrack = _NOTRACK_RE.search(a_tag) is not None
        a_tag = _NOTRACK_RE.sub("", a_tag)
        if not track or notrack:
            return a_tag
        href = _ATTR_HREF_RE.search(a_tag)
        if not href or not re.match(r"https?://", href.group(3), re.I):
            return a_tag
        if ph.pattern.search(href.group(3)):
            return a_tag  # a merge tag in the URL: per recipient, not a fixed destination
        url = html.unescape(href.group(3))
        if url not in links:
            links.append(url)
        slot = _SLOT.format(links.index(url))
        return a_tag[: href.start(3)] + slot + a_tag[href.end(3) :]

    return _A_RE.sub(replace, document), tuple(links)


def _plan_from(document: str, ph: _Placeholders) -> Plan:
    parts: list = []
    for i, piece in enumerate(ph.pattern.split(document)):
        if i % 2:
            parts.append(ph.tags[int(piece)])
        elif piece:
            parts.append(piece)
    return _fill_slots(Plan(parts))


def html_document_to_text(document: str) -> str:
    """Text part from the final HTML: head and hidden preheader dropped, links spelled out."""
    document = re.sub(r"<head\b.*?</head>", "", document, flags=re.I | re.S)
    document = re.sub(r"<!--.*?-->", "", document, flags=re.S)
    document = document.replace(_PREHEADER_OPEN, "<div hidden>", 1)
    document = re.sub(r"<div hidden>.*?</div>", "", document, flags=re.S)

    def spell_out(match: re.Match) -> str:
        href = _ATTR_HREF_RE.search(match.group(1))
        label = _TAG_RE.sub("", match.group(2)).strip()
        url = html.unescape(href.group(3)) if href else ""
        if not url or url.startswith(("mailto:", "#")) or url == label:
            return match.group(2)
        return f"{match.group(2)} ({url})" if label else url

    document = re.sub(r"<a\b([^>]*)>(.*?)</a>", spell_out, document, flags=re.I | re.S)
    document = re.sub(r"</t[dh]>", " ", document, flags=re.I)
    document = re.sub(r"<li\b[^>]*>", "- ", document, flags=re.I)
    return html_to_text(document)


def compile_email(
    *,
    subject: str,
    preheader: str,
    html_body: str,
    text_body: str = "",
    layout_html: str = "",
    track_links: bool = False,
) -> CompiledMessage:
    """The whole pipeline, once per version: parse (errors carry line/column of the authored
    text) -> protect tags -> nh3 -> layout -> premailer -> restore tags -> link slots."""
    subject_plan = bind_company(parse(subject))
    preheader_plan = bind_company(parse(preheader))
    body_plan = bind_company(parse(html_body), escape=True)
    ph = _Placeholders()
    body = sanitize_body(ph.protect(body_plan))
    document = _layout_document(
        layout_html,
        body=body,
        preheader=ph.protect(preheader_plan, escape_literals=True),
        subject=ph.protect(subject_plan, escape_literals=True),
        ph=ph,
    )
    if text_body:
        text = text_body
        if layout_html:
            text = text.rstrip() + "\n\n" + _text_footer()
    else:
        # From the document before inlining: the hidden preheader is still recognisable.
        restored = ph.pattern.sub(lambda m: ph.tags[int(m.group(1))].source, document)
        text = html_document_to_text(restored)
    document = inline_css(document)
    slotted, links = _slot_links(document, ph, track=track_links)
    return CompiledMessage(
        subject=subject_plan,
        preheader=preheader_plan,
        html=_plan_from(slotted, ph),
        text=bind_company(parse(text)),
        links=links,
    )


def bind_company(plan: Plan, *, escape: bool = False) -> Plan:
    """Substitute {{ company_name }} / {{ company_postal_address }} once, at compile time."""
    values = {
        "company_name": settings.COMPANY_NAME or "",
        "company_postal_address": settings.COMPANY_POSTAL_ADDRESS or "",
    }
    parts: list = []
    for part in plan.parts:
        if part.__class__ is not str and part.path in values:
            value = part.value(values)
            part = html.escape(value) if escape else value
        if part.__class__ is str and parts and parts[-1].__class__ is str:
            parts[-1] += part
        else:
            parts.append(part)
    return Plan(parts)


def _text_footer() -> str:
    # Settings values are literal text: braces in them must not read as merge tags.
    identity = f"{settings.COMPANY_NAME}, {settings.COMPANY_POSTAL_ADDRESS}".replace("{", "(")
    return (
        f"--\n{identity.replace('}', ')')}\n"
        "Manage your preferences: {{ preferences_url }}\n"
        "Unsubscribe: {{ unsubscribe_url }}\n"
    )


def compile_version(
    version: TemplateVersion,
    *,
    track_links: bool = False,
    subject: str | None = None,
    preheader: str | None = None,
) -> CompiledMessage:
    """The final email for a version: call once per campaign (or reply), render per recipient.

    ``subject`` / ``preheader`` override the version's (a campaign may set its own).
    """
    return compile_email(
        subject=subject or version.subject,
        preheader=preheader or version.preheader,
        html_body=version.html_body,
        text_body=version.text_body,
        layout_html=version.layout_html,
        track_links=track_links,
    )
