"""The template linter: live in the editor, enforced before any send.

Each finding says where (field, line, column) and how to fix it. ``blocking`` findings stop a
send (campaign pre-flight, "reply with a template"); ``warning`` findings are shown but do not.

    findings = lint_version(version, audience=subscriber_queryset)
    if has_blocking(findings): ...

``recipients_missing_fields`` streams over recipient contexts for the pre-flight page.
"""

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass

from django.conf import settings
from django.db.models import Count, QuerySet
from django.template.defaultfilters import pluralize

from .fields import (
    COMPANY_FIELDS,
    LAYOUT_FIELDS,
    URL_FIELDS,
    is_known_field,
    is_recipient_data,
    known_fields,
    recipient_empty_q,
)
from .merge import MergeSyntaxError, Plan, Tag, lookup, parse
from .rendering import parse_layout

BLOCKING = "blocking"
WARNING = "warning"
SUBJECT_MAX = 78  # beyond this, phones and most inboxes cut the subject off
NEWSLETTER = "newsletter"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    message: str
    fix: str
    field: str = "html_body"
    line: int = 0
    column: int = 0

    @property
    def blocking(self) -> bool:
        return self.severity == BLOCKING

    def as_dict(self) -> dict:
        return asdict(self)


def has_blocking(findings: Iterable[Finding]) -> bool:
    return any(f.blocking for f in findings)


def _position(text: str, index: int) -> tuple[int, int]:
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


# --- Drafting placeholders ------------------------------------------------------------------

PLACEHOLDER_PATTERNS = [
    # [name], [Your name], [Insert date] — but not [1] footnotes or [text](url) links.
    re.compile(r"\[\s*[A-Za-z][\w .'’/-]{0,40}\](?!\()"),  # noqa: RUF001
    # {name}, {first name}, ${name} — single braces (merge tags are blanked out before).
    re.compile(r"\{\s*[A-Za-z_][\w .]{0,40}\}"),
    re.compile(r"%[A-Za-z][A-Za-z_]{1,30}%"),  # %NAME%
    re.compile(r"\*\|[A-Za-z0-9_:]+\|\*"),  # *|FNAME|* (Mailchimp)
    re.compile(r"(?:<<|&lt;&lt;)\s*[A-Za-z][\w ]{0,30}(?:>>|&gt;&gt;)"),  # <<name>>
    re.compile(r"\b(?:TODO|TBD|FIXME|XXX)\b|\blorem ipsum\b", re.IGNORECASE),
]
_MERGE_TAG_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}")
_IGNORED_RE = re.compile(r"<!--.*?-->|<style\b.*?</style>", re.IGNORECASE | re.DOTALL)


def _blank(match: re.Match) -> str:
    # Same length, newlines kept: positions of what follows stay right.
    return re.sub(r"[^\n]", " ", match.group(0))


def find_placeholders(text: str) -> list[tuple[str, int, int]]:
    """(placeholder, line, column) for every drafting placeholder left in the text."""
    scanned = _MERGE_TAG_RE.sub(_blank, _IGNORED_RE.sub(_blank, text))
    found = []
    for pattern in PLACEHOLDER_PATTERNS:
        for match in pattern.finditer(scanned):
            found.append((match.group(0), *_position(text, match.start())))
    return sorted(found, key=lambda item: (item[1], item[2]))


# --- The rules ------------------------------------------------------------------------------

_IMG_RE = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ALT_RE = re.compile(r"\balt\s*=\s*([\"'])\s*\S", re.IGNORECASE)
_ALT_ANY_RE = re.compile(r"\balt\s*=", re.IGNORECASE)
_INSECURE_RE = re.compile(r"\b(href|src)\s*=\s*[\"']?\s*(http://[^\"'\s>]*)", re.IGNORECASE)
_A_RE = re.compile(r"<a\b[^>]*>(.*?)</a>", re.IGNORECASE | re.DOTALL)


def _parse_field(name: str, text: str, findings: list[Finding], *, layout: bool = False):
    try:
        return parse_layout(text) if layout else parse(text)
    except MergeSyntaxError as exc:
        findings.append(
            Finding(
                "merge-syntax",
                BLOCKING,
                f"Malformed merge tag: {exc.message}.",
                'Write tags as {{ field }} or {{ field|default:"fallback" }}; '
                "only {{ }} tags exist (no {% %}).",
                name,
                exc.line,
                exc.column,
            )
        )
        return None


def lint_template(
    *,
    kind: str,
    subject: str,
    preheader: str,
    html_body: str,
    text_body: str = "",
    layout_html: str = "",
    audience=None,
) -> list[Finding]:
    findings: list[Finding] = []
    newsletter = kind == NEWSLETTER
    fields = {
        "subject": subject,
        "preheader": preheader,
        "html_body": html_body,
        "text_body": text_body,
    }
    plans: dict[str, Plan] = {}
    for name, text in fields.items():
        plan = _parse_field(name, text, findings)
        if plan is not None:
            plans[name] = plan
    layout_plan = (
        _parse_field("layout", layout_html, findings, layout=True) if layout_html else None
    )

    # Placeholders left from drafting: the most embarrassing mistake, so always blocking.
    for name, text in fields.items():
        for placeholder, line, column in find_placeholders(text):
            findings.append(
                Finding(
                    "placeholder",
                    BLOCKING,
                    f"Drafting placeholder {placeholder!r} left in the text.",
                    "Replace it with the real words, or with a merge tag such as "
                    '{{ first_name|default:"there" }} (canned replies: {{ topic }} makes a '
                    "field the sender fills in).",
                    name,
                    line,
                    column,
                )
            )

    # Tags: unknown names, and fields without a fallback.
    for name, plan in plans.items():
        for tag in plan.tags:
            findings.extend(_tag_findings(name, tag, newsletter=newsletter, audience=audience))
    if layout_plan is not None:
        for tag in layout_plan.tags:
            if tag.path in LAYOUT_FIELDS:
                continue
            findings.extend(_tag_findings("layout", tag, newsletter=True, audience=audience))
        if not any(tag.path == "content" for tag in layout_plan.tags):
            findings.append(
                Finding(
                    "layout-without-content",
                    BLOCKING,
                    "The layout has no {{ content }} tag: the body would not appear.",
                    "Put {{ content }} in the layout where the body goes.",
                    "layout",
                )
            )
    if audience is not None:
        findings.extend(_audience_findings(plans, layout_plan, audience))

    all_tags = [t for p in [*plans.values(), layout_plan] if p is not None for t in p.tags]
    if newsletter:
        findings.extend(_compliance_findings(all_tags, html_body, layout_html))

    for name, text in (("html_body", html_body), ("layout", layout_html)):
        findings.extend(_html_findings(name, text))
    findings.extend(_text_findings(subject, preheader, newsletter=newsletter))
    return findings


def _tag_findings(field: str, tag: Tag, *, newsletter: bool, audience) -> list[Finding]:
    out = []
    if not is_known_field(tag.path):
        # In a canned reply a plain unknown name is an ad-hoc field the sender fills in.
        if newsletter or "." in tag.path:
            hint = (
                f"Use one of: {', '.join(known_fields())}."
                if newsletter
                else "Ad-hoc fields are plain names like {{ topic }}; custom attributes "
                "are attr.<key>."
            )
            out.append(
                Finding(
                    "unknown-tag",
                    BLOCKING,
                    f"Unknown merge tag {{{{ {tag.path} }}}}: it would render empty.",
                    hint,
                    field,
                    tag.line,
                    tag.column,
                )
            )
    elif is_recipient_data(tag.path) and not tag.has_default and audience is None:
        out.append(
            Finding(
                "no-default",
                WARNING,
                f"{{{{ {tag.path} }}}} has no default: it is empty for recipients without it.",
                f'Add a fallback: {{{{ {tag.path}|default:"..." }}}}.',
                field,
                tag.line,
                tag.column,
            )
        )
    return out


def _audience_findings(plans, layout_plan, audience) -> list[Finding]:
    tags: dict[str, tuple[str, Tag]] = {}
    for name, plan in [*plans.items(), ("layout", layout_plan)]:
        if plan is None:
            continue
        for tag in plan.tags:
            if not tag.has_default and is_recipient_data(tag.path) and tag.path not in tags:
                tags[tag.path] = (name, tag)
    if not tags:
        return []
    counts = (
        _empty_counts_sql(audience, list(tags))
        if isinstance(audience, QuerySet)
        else _empty_counts_contexts(audience, list(tags))
    )
    out = []
    for path, count in counts.items():
        if not count:
            continue
        field, tag = tags[path]
        out.append(
            Finding(
                "empty-for-recipients",
                BLOCKING,
                f"{{{{ {path} }}}} is empty for {count} recipient{pluralize(count)} "
                "and has no default.",
                f'Add a fallback: {{{{ {path}|default:"..." }}}}, or fill the field.',
                field,
                tag.line,
                tag.column,
            )
        )
    return out


def _empty_counts_sql(queryset: QuerySet, paths: list[str]) -> dict[str, int]:
    """One aggregate query over the audience, however large (set-based, no row fetched)."""
    aggregates = {
        f"n{i}": Count("pk", filter=recipient_empty_q(path)) for i, path in enumerate(paths)
    }
    row = queryset.order_by().aggregate(**aggregates)
    return {path: row[f"n{i}"] for i, path in enumerate(paths)}


def _empty_counts_contexts(contexts: Iterable[Mapping], paths: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(paths, 0)
    for context in contexts:
        for path in paths:
            if lookup(context, path) in (None, ""):
                counts[path] += 1
    return counts


def _compliance_findings(tags: list[Tag], html_body: str, layout_html: str) -> list[Finding]:
    out = []
    paths = {tag.path for tag in tags}
    if "unsubscribe_url" not in paths:
        out.append(
            Finding(
                "missing-unsubscribe",
                BLOCKING,
                "No unsubscribe link: a newsletter must let people leave in one click "
                "(CAN-SPAM, GDPR, Gmail and Yahoo bulk-sender rules).",
                'Use a layout with the footer, or add <a href="{{ unsubscribe_url }}">'
                "Unsubscribe</a>.",
                "layout" if layout_html else "html_body",
            )
        )
    address = (settings.COMPANY_POSTAL_ADDRESS or "").strip()
    has_address = ("company_postal_address" in paths and address) or (
        address and (address in html_body or address in layout_html)
    )
    if not has_address:
        out.append(
            Finding(
                "missing-postal-address",
                BLOCKING,
                "No postal address: CAN-SPAM requires the sender's physical address.",
                "Use a layout whose footer has {{ company_postal_address }}, and set "
                "COMPANY_POSTAL_ADDRESS in the settings.",
                "layout" if layout_html else "html_body",
            )
        )
    return out


def _html_findings(field: str, text: str) -> list[Finding]:
    out = []
    for match in _IMG_RE.finditer(text):
        if not _ALT_ANY_RE.search(match.group(0)):
            out.append(
                Finding(
                    "image-without-alt",
                    WARNING,
                    "Image without alt text: many inboxes block images, screen readers "
                    "announce the file name.",
                    'Add alt="what the image shows" (alt="" only for decorative spacers).',
                    field,
                    *_position(text, match.start()),
                )
            )
    for match in _INSECURE_RE.finditer(text):
        out.append(
            Finding(
                "insecure-link",
                WARNING,
                f"Insecure {match.group(1)} {match.group(2)!r}: http:// links look like "
                "phishing to filters and browsers warn on them.",
                "Use https://.",
                field,
                *_position(text, match.start(2)),
            )
        )
    return out


def _text_findings(subject: str, preheader: str, *, newsletter: bool) -> list[Finding]:
    out = []
    if not subject.strip():
        out.append(
            Finding(
                "subject-empty",
                BLOCKING,
                "The subject is empty.",
                "Write a subject that says what the email is about.",
                "subject",
                1,
                1,
            )
        )
    elif len(subject) > SUBJECT_MAX:
        out.append(
            Finding(
                "subject-too-long",
                WARNING,
                f"The subject is {len(subject)} characters long: inboxes cut it after about "
                f"{SUBJECT_MAX} (phones after about 40).",
                "Shorten it; move details to the preheader.",
                "subject",
                1,
                SUBJECT_MAX + 1,
            )
        )
    if newsletter and not preheader.strip():
        out.append(
            Finding(
                "preheader-missing",
                WARNING,
                "No preheader: inboxes will show the first words of the body instead.",
                "Write one sentence that completes the subject.",
                "preheader",
            )
        )
    return out


def lint_version(version, *, audience=None) -> list[Finding]:
    """Lint a pinned version; ``audience`` is a Subscriber queryset or iterable of contexts."""
    return lint_template(
        kind=version.template.kind,
        subject=version.subject,
        preheader=version.preheader,
        html_body=version.html_body,
        text_body=version.text_body,
        layout_html=version.layout_html,
        audience=audience,
    )


def recipients_missing_fields(
    compiled, contexts: Iterable[Mapping]
) -> Iterator[tuple[Mapping, tuple[str, ...]]]:
    """Yield (context, missing paths) for each recipient who would get an empty field without
    default. Streaming: the tags are collected once, each context costs a few dict lookups.
    The system's own URLs (unsubscribe_url ...) are not checked: the sender fills those."""
    tags: dict[str, Tag] = {}
    for plan in compiled.plans:
        for tag in plan.tags:
            if not tag.has_default and tag.path not in COMPANY_FIELDS + URL_FIELDS:
                tags.setdefault(tag.path, tag)
    checks = tuple(tags.items())
    for context in contexts:
        missing = tuple(path for path, tag in checks if tag.value(context) == "")
        if missing:
            yield context, missing


__all__ = [
    "BLOCKING",
    "URL_FIELDS",
    "WARNING",
    "Finding",
    "find_placeholders",
    "has_blocking",
    "lint_template",
    "lint_version",
    "recipients_missing_fields",
]
