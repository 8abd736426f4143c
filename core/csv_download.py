"""CSV files the dashboard hands out, safe to open in a spreadsheet.

Excel, LibreOffice and Google Sheets run a cell that starts with = + - @ (or a tab or carriage
return before one) as a formula: a subscriber who signs up as `=HYPERLINK(...)` or
`=cmd|' /C calc'!A0` would otherwise run it on the marketer's machine (CSV injection, OWASP).
Such a cell is prefixed with a single quote, which every spreadsheet shows as text. Every CSV
the app writes goes through csv_response().
"""

import csv
from collections.abc import Iterable

from django.http import StreamingHttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell_neutralise(value) -> str:
    """One value as the text of a cell; a would-be formula is quoted."""
    if value is None:
        return ""
    if isinstance(value, int | float):
        return str(value)  # a number, not text a spreadsheet could run (-5 stays -5)
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


class _Echo:
    """A file-like object whose write() gives back what it is given (csv.writer streaming)."""

    def write(self, value):
        return value


def csv_rows(rows: Iterable[Iterable], *, delimiter: str = ",") -> Iterable[str]:
    """Each row as one line of CSV text, every cell neutralised."""
    writer = csv.writer(_Echo(), delimiter=delimiter)
    for row in rows:
        yield writer.writerow([cell_neutralise(v) for v in row])


def csv_response(
    rows: Iterable[Iterable], *, filename: str, delimiter: str = ","
) -> StreamingHttpResponse:
    """A streamed CSV download (rows may be a generator over a server-side cursor)."""
    response = StreamingHttpResponse(
        csv_rows(rows, delimiter=delimiter), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
