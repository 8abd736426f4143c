"""CSV import: stream the file once, COPY it in chunks, merge each chunk set-based.

The file is never held in memory. A parser thread reads, parses and validates rows
(email-validator, custom field types, lengths) into chunks of CHUNK_ROWS; the calling thread
COPYs each chunk into a TEMP staging table and merges it while the parser works on the
next one, so Python and PostgreSQL use the two cores at once. Rejected rows stay in the staging
table with their reason and line number; duplicates (inside a chunk, or of an earlier chunk via
a TEMP "seen" table) and suppressed addresses are found in SQL; one INSERT ... SELECT ...
ON CONFLICT merges the rest, with topics and consent records in the same statement.

Every chunk is merged inside ONE transaction that also writes the summary: an import is either
complete with its report or did not happen. Progress is saved by the parser thread on its own
connection, so the dashboard sees it live.

Nothing outlives a transaction on the connection (no session advisory lock, no TEMP table kept
between two transactions), so the import runs unchanged behind PgBouncer in transaction mode:
the job's lock is a transaction-level advisory lock held by that one transaction, and the
staging tables are created in it and dropped at its commit (deploy/SCALING.md, "PgBouncer").

The dashboard (through a Celery task) and `manage.py import_subscribers` both call import_run.
"""

import codecs
import contextlib
import csv
import io
import json
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import charset_normalizer
from django.db import connection, transaction
from django.db.models import Q
from django.template.defaultfilters import pluralize
from django.utils import timezone

from .emails import EmailError, email_normalize
from .models import CustomField, ImportJob, Topic
from .services import attribute_text_coercer

DELIMITERS = ",;\t|"
CHUNK_ROWS = 50_000  # rows per COPY statement; progress is saved between two
STAGE = "subscribers_import_stage"
SEEN = "subscribers_import_seen"
MERGED = "subscribers_import_merged"
LOCK_CLASS = 3_0001  # advisory lock namespace of imports
LIMITS = {"first_name": 150, "last_name": 150, "language": 8, "timezone": 64}
STANDARD_TARGETS = ["email", "first_name", "last_name", "language", "timezone"]
GUESSES = {
    "email": {"email", "e-mail", "mail", "email address", "e-mail address", "courriel"},
    "first_name": {"first name", "firstname", "first", "given name", "prenom", "prénom"},
    "last_name": {"last name", "lastname", "last", "surname", "family name", "nom"},
    "language": {"language", "lang", "locale", "langue"},
    "timezone": {"timezone", "time zone", "tz"},
}


class ImportError_(Exception):
    """The file as a whole cannot be imported (no email column, not a CSV, ...)."""


@dataclass
class FileShape:
    encoding: str
    delimiter: str
    header: list[str]
    preview: list[list[str]] = field(default_factory=list)


# Byte order marks, longest first (a UTF-32 LE mark starts like a UTF-16 LE one).
BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]
# Files no encoding makes a CSV of, recognised by their first bytes.
BINARY_FORMATS = [
    (b"PK\x03\x04", "an Excel workbook or ZIP archive"),
    (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) workbook"),
    (b"%PDF", "a PDF document"),
]
# When several single-byte encodings read the sample equally well, the ones spreadsheets on
# Windows actually write win: Western, Central European, Cyrillic.
PREFERRED_ENCODINGS = ["cp1252", "cp1250", "cp1251"]
SAMPLE_BYTES = 256 * 1024


def _is_utf8(path: str) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as f:
        try:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _sample(path: str) -> bytes:
    """The start of the file and, if that is plain ASCII, the first stretch that is not."""
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES)
        if any(b > 0x7F for b in head):
            return head
        while chunk := f.read(SAMPLE_BYTES):
            at = next((i for i, b in enumerate(chunk) if b > 0x7F), None)
            if at is not None:
                start = max(0, at - 1024)
                return head[:4096] + chunk[start:] + f.read(max(0, start))
    return head


def detect_encoding(path: str) -> str:
    """The file's encoding: a byte order mark, else UTF-8 when the whole file is UTF-8, else
    what charset-normalizer reads best. ImportError_ when the file is not text at all."""
    with open(path, "rb") as f:
        start = f.read(8)
    for bom, encoding in BOMS:
        if start.startswith(bom):
            return encoding
    for magic, what in BINARY_FORMATS:
        if start.startswith(magic):
            raise ImportError_(
                f"This file is {what}, not a CSV file. Save it as CSV (UTF-8) and upload that."
            )
    if _is_utf8(path):
        return "utf-8-sig"
    sample = _sample(path)
    # On a short sample, multi-byte Asian encodings read accented Western text with no visible
    # "chaos" (an é and the letter after it become one ideogram): the Windows code pages are
    # tried on their own first, and win unless the sample reads clearly worse in them.
    windows = list(charset_normalizer.from_bytes(sample, cp_isolation=PREFERRED_ENCODINGS))
    overall = charset_normalizer.from_bytes(sample).best()
    if windows and (overall is None or min(m.chaos for m in windows) <= overall.chaos + 0.05):
        best = min(m.chaos for m in windows)
        close = [m for m in windows if m.chaos <= best + 0.01]
        for preferred in PREFERRED_ENCODINGS:
            if any(preferred in m.could_be_from_charset for m in close):
                return preferred
    if overall is None:
        raise ImportError_(
            "The file's text encoding could not be recognised (is it a CSV file?). "
            "Save it as CSV (UTF-8) and upload it again."
        )
    return overall.encoding


def _open_text(path: str, encoding: str):
    return open(path, encoding=encoding, newline="", errors="replace")


def import_preview(*, job: ImportJob, rows: int = 6) -> list[list[str]]:
    """The file's first non-blank rows (header included), read the way the import reads them:
    for the mapping page. Empty when the file cannot be read."""
    preview: list[list[str]] = []
    try:
        with _open_text(job.file.path, job.options["encoding"]) as f:
            for row in csv.reader(f, delimiter=job.options["delimiter"]):
                if len(preview) >= rows:
                    break
                if any(c.strip() for c in row):
                    preview.append(row)
    except (OSError, csv.Error):
        preview = []
    return preview


def sniff(path: str) -> FileShape:
    encoding = detect_encoding(path)
    with _open_text(path, encoding) as f:
        sample = f.read(64 * 1024)
    if not sample.strip():
        raise ImportError_("The file is empty.")
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first = next((line for line in sample.splitlines() if line.strip()), "")
        delimiter = max(DELIMITERS, key=first.count)
        if not first.count(delimiter):
            delimiter = ","
    rows = csv.reader(io.StringIO(sample), delimiter=delimiter)
    header: list[str] | None = None
    preview: list[list[str]] = []
    try:
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
            elif len(preview) < 5:
                preview.append(row)
            else:
                break
    except csv.Error:
        pass
    if not header:
        raise ImportError_("The file has no header row.")
    return FileShape(encoding=encoding, delimiter=delimiter, header=header, preview=preview)


def mapping_guess(header: list[str], fields: list[CustomField]) -> dict[str, str]:
    """Column index (as a string) -> target: email, first_name, ..., attr:<key> or ignore."""
    by_name = {f.key.lower(): f.key for f in fields} | {f.label.lower(): f.key for f in fields}
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for index, name in enumerate(header):
        clean = re.sub(r"[_\s]+", " ", name.strip().lower())
        target = "ignore"
        for candidate, names in GUESSES.items():
            if clean in names and candidate not in taken:
                target = candidate
                break
        else:
            key = by_name.get(clean) or by_name.get(clean.replace(" ", "_"))
            if key and f"attr:{key}" not in taken:
                target = f"attr:{key}"
        if target != "ignore":
            taken.add(target)
        mapping[str(index)] = target
    return mapping


def _records(reader) -> Iterator[tuple[int, list[str] | None, str]]:
    """(first line number, row or None, error) for each CSV record, never raising."""
    last = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield last + 1, None, f"unreadable CSV ({exc})"
            last = reader.line_num
            continue
        yield last + 1, row, ""
        last = reader.line_num


def _nul_free(lines):
    # PostgreSQL text cannot hold NUL; such a byte can only be garbage in a CSV.
    for line in lines:
        yield line.replace("\x00", "\ufffd") if "\x00" in line else line


PHASES = [
    "parse_validate",
    "wait_for_parser",
    "copy",
    "dedup_suppressed",
    "merge_subscribers",
    "subscriptions",
    "consent_records",
    "rejections",
    "commit",
]


class _Clock:
    """Adds the seconds each phase takes (a phase may run once per chunk)."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._mark = time.perf_counter()

    def start(self) -> None:
        self._mark = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self._mark
        self._mark = now


@dataclass
class _Plan:
    """What to read from each row, resolved once from the mapping (in the calling thread)."""

    email_at: int
    plain: list[tuple[int, int, int, str]]  # (slot in the staging tuple, column, limit, name)
    attributes: list[tuple[int, str, Callable[[str], Any]]]  # (column, key, coercer)
    warnings: list[str]


def _plan(options: dict) -> _Plan:
    fields = {f.key: f for f in CustomField.objects.all()}
    columns: dict[str, int] = {}
    attributes: list[tuple[int, str, Callable[[str], Any]]] = []
    warnings: list[str] = []
    for index, target in options["mapping"].items():
        if target.startswith("attr:"):
            key = target[5:]
            if key not in fields:
                warnings.append(f"Column {int(index) + 1}: custom field {key!r} no longer exists")
                continue
            attributes.append((int(index), key, attribute_text_coercer(fields[key])))
        elif target in STANDARD_TARGETS:
            columns[target] = int(index)
    if "email" not in columns:
        raise ImportError_("No column is mapped to the email address.")
    plain = [
        (slot, columns[name], LIMITS[name], name)
        for slot, name in enumerate(LIMITS)
        if name in columns
    ]
    return _Plan(columns["email"], plain, attributes, warnings)


def _chunks(path: str, options: dict, plan: _Plan) -> Iterator[tuple[list[tuple], int, int]]:
    """Parse and validate the file, streaming: (staging rows, bytes read, rows so far) chunks.

    Appends its warnings (unmapped columns, blank lines) to plan.warnings.
    """
    rows = 0
    mapping = options["mapping"]
    with open(path, "rb") as binary:
        text = io.TextIOWrapper(binary, encoding=options["encoding"], newline="", errors="replace")
        reader = csv.reader(_nul_free(text), delimiter=options["delimiter"])
        records = _records(reader)
        header = None
        for _line, row, _error in records:
            if row and any(cell.strip() for cell in row):
                header = row
                break
        if header is None:
            raise ImportError_("The file has no header row.")
        width = len(header)
        unmapped = [
            name or f"#{i + 1}"
            for i, name in enumerate(header)
            if mapping.get(str(i), "ignore") == "ignore"
        ]
        if unmapped:
            plan.warnings.append(f"Columns not imported: {', '.join(unmapped)}")
        blank = 0
        email_at, plain, attributes = plan.email_at, plan.plain, plan.attributes
        delimiter = options["delimiter"]
        chunk: list[tuple] = []
        # Duplicates inside one chunk are caught here, while parsing (cheaper than a GROUP BY
        # in PostgreSQL); duplicates of an earlier chunk are caught by the merge (SEEN).
        first_line: dict[str, int] = {}
        for line, row, error in records:
            if row is not None and not any(cell.strip() for cell in row):
                blank += 1
                continue
            rows += 1
            if error or row is None:  # (no row comes without an error)
                chunk.append((line, None, "", "", "", "", "{}", error, ""))
            else:
                staged = _validate(line, row, width, email_at, plain, attributes, delimiter)
                email = staged[1]
                if email is not None:
                    seen_at = first_line.setdefault(email, line)
                    if seen_at != line:
                        staged = _rejected(line, row, f"duplicate of line {seen_at}", delimiter)
                chunk.append(staged)
            if len(chunk) >= CHUNK_ROWS:
                yield chunk, _tell(binary), rows
                chunk = []
                first_line.clear()
        if chunk:
            yield chunk, _tell(binary), rows
        if blank:
            plan.warnings.append(f"{blank} blank line{pluralize(blank)} skipped")


def _tell(binary) -> int:
    try:
        return binary.tell()
    except (OSError, ValueError):
        return 0


_END = object()


def _produce(
    job_pk: int, path: str, options: dict, plan: _Plan, out: queue.Queue, stop, clock: _Clock
):
    """Parser thread: CSV parsing and validation (Python) run while PostgreSQL merges the
    previous chunk, so the two cores work at the same time. Progress is saved on this thread's
    own connection, outside the import's transaction, so the dashboard sees it live."""
    try:
        parsing = time.perf_counter()
        for item in _chunks(path, options, plan):
            clock.seconds["parse_validate"] += time.perf_counter() - parsing
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.5)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
            _, position, rows = item
            ImportJob.objects.filter(pk=job_pk).update(bytes_done=position, rows_read=rows)
            parsing = time.perf_counter()
        clock.seconds["parse_validate"] += time.perf_counter() - parsing
        out.put(_END)
    except BaseException as exc:  # handed over to the merging thread, which re-raises it
        out.put(exc)
    finally:
        connection.close()


_json_encode = json.JSONEncoder(ensure_ascii=False).encode


def _validate(line, row, width, email_at, plain, attributes, delimiter) -> tuple:
    """One row as a staging tuple: valid (email set) or rejected (reason set)."""
    # A row of the wrong width has lost or gained a delimiter: its values may sit under the
    # wrong headings, so a short row and a long one are both refused, saying which they were.
    # Empty cells after the last heading (a trailing delimiter) are no such sign.
    if len(row) > width and any(cell.strip() for cell in row[width:]):
        return _rejected(
            line, row, f"{len(row)} columns where the header has {width}: too many", delimiter
        )
    if len(row) < width:
        return _rejected(
            line, row, f"{len(row)} columns where the header has {width}: too few", delimiter
        )
    try:
        email = email_normalize(row[email_at])
    except EmailError as exc:
        return _rejected(line, row, str(exc), delimiter)
    values = ["", "", "", ""]  # first_name, last_name, language, timezone
    for slot, index, limit, name in plain:
        if index < len(row):
            value = row[index].strip()
            if len(value) > limit:
                return _rejected(line, row, f"{name} is longer than {limit} characters", delimiter)
            values[slot] = value
    attrs = None
    for index, key, coerce in attributes:
        raw = row[index] if index < len(row) else ""
        if not raw or raw.isspace():
            continue
        try:
            value = coerce(raw)
        except ValueError as exc:
            return _rejected(line, row, str(exc), delimiter)
        if attrs is None:
            attrs = {}
        attrs[key] = value
    return (
        line,
        email,
        *values,
        _json_encode(attrs) if attrs else "{}",
        None,
        "",
    )


def _rejected(line: int, row: list[str], reason: str, delimiter: str) -> tuple:
    return (line, None, "", "", "", "", "{}", reason, row_text(row, delimiter)[:1000])


def row_text(row: list[str], delimiter: str) -> str:
    """A row as one CSV record in the file's own delimiter (quoted where needed)."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(row)
    return out.getvalue()


def row_cells(text: str, delimiter: str) -> list[str]:
    """row_text() read back (a truncated record gives what it can)."""
    try:
        return next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error:
        return [text]


# Each statement below is one phase of the import, timed on its own (ImportJob.phase_seconds).
MERGE_SQL = """
WITH merged AS (
    INSERT INTO subscribers_subscriber AS s (
        email, first_name, last_name, attributes, status, source, source_detail, language,
        timezone, created_at, updated_at, confirmed_at
    )
    SELECT email, first_name, last_name, attributes, %(status)s, 'import', %(detail)s,
           COALESCE(NULLIF(language, ''), 'en'), timezone, %(now)s, %(now)s, %(confirmed_at)s
    FROM {stage} st
    WHERE st.reject IS NULL AND NOT st.suppressed
    -- In index order, the unique lower(email) index is filled page by page, not at random
    -- (the staging column compares bytewise; the index in the database's collation).
    ORDER BY st.email COLLATE "default"
    ON CONFLICT ((lower(email))) DO UPDATE SET
        first_name = COALESCE(NULLIF(EXCLUDED.first_name, ''), s.first_name),
        last_name = COALESCE(NULLIF(EXCLUDED.last_name, ''), s.last_name),
        timezone = COALESCE(NULLIF(EXCLUDED.timezone, ''), s.timezone),
        attributes = s.attributes || EXCLUDED.attributes,
        status = CASE WHEN %(confirmed)s AND s.status = 'unconfirmed' THEN 'active'
                      ELSE s.status END,
        confirmed_at = CASE WHEN %(confirmed)s AND s.status = 'unconfirmed' THEN %(now)s
                            ELSE s.confirmed_at END,
        updated_at = %(now)s
    WHERE %(update_existing)s AND s.erased_at IS NULL AND (
        (EXCLUDED.first_name <> '' AND EXCLUDED.first_name <> s.first_name)
        OR (EXCLUDED.last_name <> '' AND EXCLUDED.last_name <> s.last_name)
        OR (EXCLUDED.timezone <> '' AND EXCLUDED.timezone <> s.timezone)
        OR NOT s.attributes @> EXCLUDED.attributes
        OR (%(confirmed)s AND s.status = 'unconfirmed')
        OR (cardinality(%(topics)s::bigint[]) > 0 AND (
            SELECT count(*) FROM subscribers_subscription ss
            WHERE ss.subscriber_id = s.id AND ss.topic_id = ANY(%(topics)s::bigint[])
        ) < cardinality(%(topics)s::bigint[]))
    )
    RETURNING s.id, (xmax = 0) AS inserted
)
INSERT INTO {merged} (id, inserted) SELECT id, inserted FROM merged
"""

# A subscriber this import created cannot have a subscription yet (ids are never reused, and
# nobody else sees the row before the commit): those take a plain INSERT, cheaper than the
# speculative insertion of ON CONFLICT that the existing ones need.
SUBSCRIBE_SQL = """
INSERT INTO subscribers_subscription (subscriber_id, topic_id, status, created_at, updated_at)
SELECT m.id, topic_id, 'active', %(now)s, %(now)s
FROM {merged} m CROSS JOIN unnest(%(topics)s::bigint[]) AS topic_id
WHERE m.inserted = %(inserted)s
{on_conflict}
"""

CONSENT_SQL = """
INSERT INTO subscribers_consentrecord
    (subscriber_id, text, version, "where", ip, user_agent, created_at)
SELECT m.id, %(consent_text)s, %(consent_version)s, 'import', NULL, '', %(now)s
FROM {merged} m
"""


def _merge_chunk(cursor, job: ImportJob, params: dict, clock: _Clock) -> dict:
    """Merge the chunk in the staging table; the caller holds the import's transaction."""
    # Duplicates inside the chunk were rejected while parsing; here, duplicates of an earlier
    # chunk: the first occurrence is imported, the others reported with the line of the first.
    cursor.execute(f"""
        UPDATE {STAGE} st SET reject = 'duplicate of line ' || seen.line
        FROM {SEEN} seen WHERE seen.email = st.email AND st.reject IS NULL
    """)  # noqa: S608
    cursor.execute(
        f"INSERT INTO {SEEN} (email, line) SELECT email, line FROM {STAGE} WHERE reject IS NULL"  # noqa: S608
    )
    cursor.execute(f"""
        UPDATE {STAGE} st SET suppressed = true
        FROM subscribers_suppression sp
        WHERE sp.email_hash = encode(sha256(convert_to(st.email, 'UTF8')), 'hex')
          AND st.reject IS NULL
    """)  # noqa: S608
    cursor.execute(f"""
        SELECT count(*) FILTER (WHERE reject IS NULL AND NOT suppressed),
               count(*) FILTER (WHERE suppressed)
        FROM {STAGE}
    """)  # noqa: S608
    accepted, suppressed = cursor.fetchone()
    clock.lap("dedup_suppressed")
    cursor.execute(MERGE_SQL.format(stage=STAGE, merged=MERGED), params)
    cursor.execute(f"SELECT count(*) FILTER (WHERE inserted), count(*) FROM {MERGED}")  # noqa: S608
    created, merged = cursor.fetchone()
    updated = merged - created
    clock.lap("merge_subscribers")
    if params["topics"] and created:
        sql = SUBSCRIBE_SQL.format(merged=MERGED, on_conflict="")
        cursor.execute(sql, {**params, "inserted": True})
    if params["topics"] and updated:
        sql = SUBSCRIBE_SQL.format(
            merged=MERGED, on_conflict="ON CONFLICT (subscriber_id, topic_id) DO NOTHING"
        )
        cursor.execute(sql, {**params, "inserted": False})
    clock.lap("subscriptions")
    if params["confirmed"]:
        cursor.execute(CONSENT_SQL.format(merged=MERGED), params)
    clock.lap("consent_records")
    cursor.execute(
        f"""
        INSERT INTO subscribers_importrejection (job_id, line, reason, raw)
        SELECT %s, line, left(reject, 255), raw FROM {STAGE}
        WHERE reject IS NOT NULL ORDER BY line
        """,  # noqa: S608
        [job.pk],
    )
    rejected = cursor.rowcount
    cursor.execute(f"TRUNCATE {STAGE}, {MERGED}")
    clock.lap("rejections")
    return {
        "created": created,
        "updated": updated,
        "unchanged": accepted - created - updated,
        "suppressed": suppressed,
        "rejected": rejected,
    }


def _merge_params(job: ImportJob, options: dict) -> dict:
    now = timezone.now()
    confirmed = bool(options.get("confirmed"))
    topics = [int(t) for t in options.get("topics", [])]
    return {
        "status": "active" if confirmed else "unconfirmed",
        "detail": f"import:{job.pk}",
        "now": now,
        "confirmed_at": now if confirmed else None,
        "confirmed": confirmed,
        "update_existing": bool(options.get("update_existing", True)),
        "topics": list(Topic.objects.filter(pk__in=topics).values_list("pk", flat=True)),
        "consent_text": options.get("consent_note") or "Imported as confirmed.",
        "consent_version": f"import-{job.pk}",
    }


def _import(job: ImportJob, path: str, options: dict) -> None:
    """Stream the file through the parser thread and merge it chunk by chunk, in the caller's
    transaction (the one holding the job's lock)."""
    plan = _plan(options)
    params = _merge_params(job, options)
    chunks: queue.Queue = queue.Queue(maxsize=2)  # bounds memory: at most ~3 chunks alive
    stop = threading.Event()
    clock = _Clock()
    parser = threading.Thread(
        target=_produce, args=(job.pk, path, options, plan, chunks, stop, clock), daemon=True
    )
    totals = {"created": 0, "updated": 0, "unchanged": 0, "suppressed": 0, "rejected": 0}
    parser.start()
    try:
        with connection.cursor() as cursor:
            # The job row commits with the data, so a crash can only lose the whole import,
            # never half of it: the commit need not wait for the WAL flush of a million rows.
            cursor.execute("SET LOCAL synchronous_commit TO off")
            # Enough memory for the dedup and the email-ordered merge to sort without spilling.
            cursor.execute("SET LOCAL work_mem TO '64MB'")
            rows = 0
            while True:
                clock.start()
                item = chunks.get()
                clock.lap("wait_for_parser")
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                staged, _, rows = item
                with cursor.cursor.copy(
                    f"COPY {STAGE} (line, email, first_name, last_name, language, timezone,"
                    " attributes, reject, raw) FROM STDIN"
                ) as copy:
                    for row in staged:
                        copy.write_row(row)
                del staged, item
                clock.lap("copy")
                for key, value in _merge_chunk(cursor, job, params, clock).items():
                    totals[key] += value
            ImportJob.objects.filter(pk=job.pk).update(
                status=ImportJob.Status.DONE,
                rows_read=rows,
                bytes_done=job.bytes_total,
                warnings=plan.warnings,
                finished_at=timezone.now(),
                **totals,
            )
            clock.start()
        clock.lap("commit")
    finally:
        stop.set()
        parser.join(timeout=30)
    # Where the time went, for the summary page and bench/import.py (after the commit, which
    # is itself one of the phases).
    ImportJob.objects.filter(pk=job.pk).update(
        phase_seconds={phase: round(sec, 3) for phase, sec in clock.seconds.items()}
    )


def _create_stage() -> None:
    """The staging tables, for the rest of the current transaction: TEMP (private to this
    session, never WAL-logged, gone if the worker dies) and ON COMMIT DROP, so that no server
    connection a pooler hands to someone else keeps them."""
    with connection.cursor() as cursor:
        # Inside an outer transaction (tests), an earlier import's tables are still there.
        cursor.execute(f"DROP TABLE IF EXISTS {STAGE}, {SEEN}, {MERGED}")
        cursor.execute(f"""
            CREATE TEMP TABLE {STAGE} (
                line integer NOT NULL,
                email text COLLATE "C",
                first_name text NOT NULL,
                last_name text NOT NULL,
                language text NOT NULL,
                timezone text NOT NULL,
                attributes jsonb NOT NULL,
                reject text,
                raw text NOT NULL,
                suppressed boolean NOT NULL DEFAULT false
            ) ON COMMIT DROP
        """)
        # Every address accepted so far, to spot a duplicate of an earlier chunk. Compared
        # bytewise ("C"): addresses are normalized already, and a locale's comparison costs
        # several times more in the million index lookups and inserts of a large file.
        cursor.execute(
            f'CREATE TEMP TABLE {SEEN} (email text COLLATE "C" PRIMARY KEY, line integer) '
            "ON COMMIT DROP"
        )
        # The subscribers one chunk created or updated, for their topics and consent records.
        cursor.execute(
            f"CREATE TEMP TABLE {MERGED} (id bigint NOT NULL, inserted boolean) ON COMMIT DROP"
        )


def _try_lock(job: ImportJob) -> bool:
    """The job's lock, until the current transaction ends. Transaction-level: a session lock
    would stay behind on whichever server connection PgBouncer (transaction mode) ran it on,
    and its unlock would go to another one. It conflicts with a session lock all the same."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [LOCK_CLASS, job.pk])
        return cursor.fetchone()[0]


class _TakenOver(Exception):
    """Between the claim and the import, another run of the same job took its lock."""


def import_run(*, job: ImportJob) -> ImportJob:
    """Run one import to completion (or to FAILED with the error), idempotently."""
    # A redelivered task (worker lost, visibility timeout) must never run beside the first one:
    # the job's lock is held by the transaction that claims it, then by the one that imports
    # it; a worker that dies lets go of it with its connection.
    with transaction.atomic():
        if not _try_lock(job):
            job.refresh_from_db()
            return job
        claimed = ImportJob.objects.filter(
            pk=job.pk, status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING]
        ).update(status=ImportJob.Status.RUNNING, started_at=timezone.now(), bytes_done=0)
    job.refresh_from_db()
    if not claimed:
        return job  # already done or failed: a redelivered task must not import twice
    # Called outside a transaction (task, command), the claim and the progress commit and are
    # visible to the dashboard; inside one (tests) it still works, progress is just not seen.
    options = dict(job.options)
    path = job.file.path
    try:
        with transaction.atomic():
            # Between the two transactions another copy may have claimed the job too (the
            # stalled-import sweep saw its lock free): whoever locks it now imports it, once.
            if (
                not _try_lock(job)
                or not ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.RUNNING).exists()
            ):
                raise _TakenOver
            if "encoding" not in options or "delimiter" not in options:
                shape = sniff(path)
                options.setdefault("encoding", shape.encoding)
                options.setdefault("delimiter", shape.delimiter)
            _create_stage()
            _import(job, path, options)
    except _TakenOver:
        pass
    except ImportError_ as exc:
        _fail(job, str(exc))
    except Exception as exc:  # the task's last resort: the page says so, then it is raised
        _fail(job, f"The import failed and nothing was imported: {exc}")
        raise
    job.refresh_from_db()
    if job.status == ImportJob.Status.DONE:
        # The file is personal data: once imported (and its rejections stored), it goes.
        with contextlib.suppress(OSError):
            job.file.delete(save=False)
    return job


def import_job_stalled(*, job: ImportJob) -> bool:
    """Running, yet nobody holds its lock: the worker running it died, and with it the open
    transaction, so nothing of it was saved. The broker would redeliver the task only after its
    visibility timeout (an hour); ``tasks.import_job_resume`` runs it again now."""
    if job.status != ImportJob.Status.RUNNING:
        return False
    # Taken and let go in one transaction: nothing stays behind on a pooled connection.
    with transaction.atomic():
        return _try_lock(job)


def _fail(job: ImportJob, message: str) -> None:
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.FAILED, error=message[:2000], finished_at=timezone.now()
    )


def import_job_create(
    *,
    file,
    name: str,
    topics: list[int] | tuple = (),
    confirmed: bool = False,
    consent_note: str = "",
    update_existing: bool = True,
    created_by: str = "",
) -> ImportJob:
    """Store the upload and sniff it; the job then waits for its column mapping."""
    job = ImportJob(original_name=name[:255], created_by=created_by[:150])
    job.file.save(f"{timezone.now():%Y%m%d%H%M%S}.csv", file, save=False)
    job.bytes_total = job.file.size
    try:
        shape = sniff(job.file.path)
    except ImportError_:
        job.file.delete(save=False)  # personal data: a refused upload is not kept
        raise
    job.options = {
        "encoding": shape.encoding,
        "delimiter": shape.delimiter,
        "header": shape.header,
        "mapping": mapping_guess(shape.header, list(CustomField.objects.all())),
        "topics": list(topics),
        "confirmed": confirmed,
        "consent_note": consent_note,
        "update_existing": update_existing,
    }
    job.save()
    return job


def import_job_start(*, job: ImportJob, mapping: dict[str, str], **options) -> ImportJob:
    """Fix the mapping and options and mark the import queued; the caller enqueues it
    (``tasks.import_job_enqueue``)."""
    targets = [t for t in mapping.values() if t != "ignore"]
    if "email" not in targets:
        raise ImportError_("Map one column to the email address.")
    duplicates = {t for t in targets if targets.count(t) > 1}
    if duplicates:
        raise ImportError_(f"Several columns are mapped to {', '.join(sorted(duplicates))}.")
    if options.get("confirmed") and not (options.get("consent_note") or "").strip():
        raise ImportError_("Say how these people consented: the note is kept as their record.")
    job.options = {**job.options, **options, "mapping": mapping}
    job.status = ImportJob.Status.QUEUED
    job.save(update_fields=["options", "status"])
    return job


REJECTIONS_PAGE = 2000  # rows per query of the rejected rows' CSV download


def import_rejection_rows(job: ImportJob, *, delimiter: str) -> Iterator[list]:
    """An import's rejected rows as CSV rows: the line and the reason, then the file's own
    columns (fix them in a spreadsheet and import the file again)."""
    yield ["line", "reason", *job.options.get("header", [])]
    # Pages in line order (id breaks ties), no server-side cursor (see
    # selectors.subscribers_export_rows).
    rejections = job.rejections.order_by("line", "id").values_list("line", "id", "reason", "raw")
    after = Q()
    while page := list(rejections.filter(after)[:REJECTIONS_PAGE]):
        for line, _id, reason, raw in page:
            yield [line, reason, *row_cells(raw, delimiter)]
        line, last = page[-1][:2]
        after = Q(line__gt=line) | Q(line=line, id__gt=last)
