"""The merge-tag language marketers write in subjects and bodies.

    Hello {{ first_name|default:"there" }}, news for {{ attr.company|upper }}.

Only ``{{ path|filter:"arg"|... }}`` exists. A path is dotted names looked up in plain dicts
(never attributes of Python objects), filters come from a fixed table, and ``{% ... %}`` is
refused. This is deliberately not Django's or Jinja's engine: user-authored text must not be
able to reach settings, objects or template tags (server-side template injection).

``parse`` turns text into a ``Plan`` once per template version; ``Plan.render`` is substitution
only, cheap enough to run for every recipient.
"""

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_PATH_RE = re.compile(rf"{_NAME}(?:\.{_NAME})*\Z")
_FILTER_RE = re.compile(
    rf'\s*({_NAME})\s*(?::\s*(?:"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\'))?\s*\Z'
)
_OPEN_RE = re.compile(r"\{\{|\{%|\{#")


_escape = html.escape  # quotes too: values may land inside attributes (href="...")


class MergeSyntaxError(ValueError):
    def __init__(self, message: str, line: int, column: int):
        super().__init__(f"{message} (line {line}, column {column})")
        self.message = message
        self.line = line
        self.column = column


def _default(value, arg):
    return value if value not in (None, "") else arg


FILTERS: dict[str, Callable] = {
    "default": _default,
    "upper": lambda value, arg=None: str(value).upper(),
    "lower": lambda value, arg=None: str(value).lower(),
    "title": lambda value, arg=None: str(value).title(),
    "capfirst": lambda value, arg=None: str(value)[:1].upper() + str(value)[1:],
    "trim": lambda value, arg=None: str(value).strip(),
}
FILTERS_WITH_ARG = {"default"}


@dataclass(frozen=True, slots=True)
class Tag:
    path: str
    filters: tuple[tuple[str, str | None], ...]
    line: int
    column: int
    source: str
    # The path split once at parse time: rendering runs per recipient and must stay cheap.
    keys: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self):
        if not self.keys:
            object.__setattr__(self, "keys", tuple(self.path.split(".")))

    @property
    def default(self) -> str | None:
        for name, arg in self.filters:
            if name == "default":
                return arg
        return None

    @property
    def has_default(self) -> bool:
        return any(name == "default" for name, _ in self.filters)

    def value(self, context: Mapping) -> str:
        value: Any = context
        for key in self.keys:
            if value.__class__ is not dict and not isinstance(value, Mapping):
                value = None
                break
            value = value.get(key)
        if value is not None and value.__class__ is not str and _is_structure(value):
            value = None  # never dump a structure into a message
        for name, arg in self.filters:
            if value in (None, "") and name != "default":
                continue
            value = FILTERS[name](value, arg)
        return "" if value is None else str(value)


def _is_structure(value) -> bool:
    return isinstance(value, Mapping | list | tuple | set)


def lookup(context: Mapping, path: str):
    """Dotted lookup through dicts only: ``attr.company`` is context["attr"]["company"]."""
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    if isinstance(value, Mapping | list | tuple | set):
        return None  # never dump a structure into a message
    return value


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def _unescape(arg: str) -> str:
    return re.sub(r"\\(.)", r"\1", arg)


def _parse_tag(text: str, start: int, end: int) -> Tag:
    line, column = _position(text, start)
    inner = text[start + 2 : end].strip()
    if not inner:
        raise MergeSyntaxError("Empty tag {{ }}", line, column)
    path, *raw_filters = _split_filters(inner)
    path = path.strip()
    if not _PATH_RE.match(path):
        raise MergeSyntaxError(f"{path!r} is not a field name", line, column)
    if any(part.startswith("_") for part in path.split(".")):
        raise MergeSyntaxError(f"{path!r}: names cannot start with an underscore", line, column)
    filters = []
    for raw in raw_filters:
        match = _FILTER_RE.match(raw)
        if not match:
            raise MergeSyntaxError(f"Malformed filter {raw.strip()!r}", line, column)
        name = match.group(1)
        arg = match.group(2) if match.group(2) is not None else match.group(3)
        if name not in FILTERS:
            raise MergeSyntaxError(
                f"Unknown filter {name!r}; use one of {', '.join(sorted(FILTERS))}", line, column
            )
        if name in FILTERS_WITH_ARG and arg is None:
            raise MergeSyntaxError(f'Filter {name!r} needs a value: |{name}:"..."', line, column)
        if name not in FILTERS_WITH_ARG and arg is not None:
            raise MergeSyntaxError(f"Filter {name!r} takes no value", line, column)
        filters.append((name, _unescape(arg) if arg is not None else None))
    return Tag(path, tuple(filters), line, column, text[start : end + 2])


def _split_filters(inner: str) -> list[str]:
    """Split on | outside quotes."""
    parts, current, quote = [], [], None
    chars = iter(inner)
    for char in chars:
        if quote:
            current.append(char)
            if char == "\\":
                current.append(next(chars, ""))
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
            current.append(char)
        elif char == "|":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quote:
        raise ValueError("unterminated quote")
    parts.append("".join(current))
    return parts


class Plan:
    """Parsed text: literal strings and tags in order. Rendering is substitution only."""

    __slots__ = ("_dynamic", "_template", "parts", "tags")

    def __init__(self, parts: list):
        self.parts = parts
        self.tags = [part for part in parts if isinstance(part, Tag)]
        # Literals are laid out once; rendering copies the list and fills the holes.
        self._template = [part if part.__class__ is str else "" for part in parts]
        self._dynamic = tuple(
            (index, part.value) for index, part in enumerate(parts) if part.__class__ is not str
        )

    def render(self, context: Mapping, *, escape: bool = False) -> str:
        out = self._template.copy()
        if escape:
            for index, value in self._dynamic:
                out[index] = _escape(value(context))
        else:
            for index, value in self._dynamic:
                out[index] = value(context)
        return "".join(out)

    def missing(self, context: Mapping) -> list[Tag]:
        """Tags that would render empty for this context (no value and no default)."""
        return [tag for tag in self.tags if tag.value(context) == ""]

    @property
    def paths(self) -> set[str]:
        return {tag.path for tag in self.tags}


def parse(text: str) -> Plan:
    parts: list = []
    index = 0
    while True:
        match = _OPEN_RE.search(text, index)
        if not match:
            break
        start = match.start()
        opener = match.group()
        if opener != "{{":
            line, column = _position(text, start)
            kind = "Block tags {% %}" if opener == "{%" else "Comments {# #}"
            raise MergeSyntaxError(
                f"{kind} are not supported: only {{{{ field }}}} merge tags", line, column
            )
        end = text.find("}}", start + 2)
        newline = text.find("\n", start + 2)
        if end == -1 or (newline != -1 and newline < end):
            line, column = _position(text, start)
            raise MergeSyntaxError("Unclosed tag: '{{' without '}}' on the same line", line, column)
        if start > index:
            parts.append(text[index:start])
        try:
            parts.append(_parse_tag(text, start, end))
        except ValueError as exc:
            if isinstance(exc, MergeSyntaxError):
                raise
            line, column = _position(text, start)
            raise MergeSyntaxError(f"Malformed tag: {exc}", line, column) from exc
        index = end + 2
    if index < len(text):
        parts.append(text[index:])
    # A stray closer means a tag was mistyped (e.g. "{ first_name }}").
    for part in parts:
        if isinstance(part, str) and "}}" in part:
            offset = sum(
                len(p) if isinstance(p, str) else len(p.source) for p in parts[: parts.index(part)]
            )
            line, column = _position(text, offset + part.index("}}"))
            raise MergeSyntaxError("'}}' without a matching '{{'", line, column)
    return Plan(parts)
