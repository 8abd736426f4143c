"""/imports: CSV import jobs through the dashboard's import machinery (subscribers.importing):
the same sniffing, column mapping, validation, set-based merge, progress and per-line report."""

import datetime as dt
import json
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from ninja import File, Form, Query, Router, Schema, Status
from ninja.files import UploadedFile
from pydantic import Field

from subscribers.importing import (
    STANDARD_TARGETS,
    ImportError_,
    import_job_create,
    import_job_start,
)
from subscribers.models import CustomField, ImportJob
from subscribers.tasks import import_job_enqueue

from .auth import require_scope
from .errors import ApiError, Error
from .services import topics_by_slug

router = Router(tags=["imports"])

ERRORS: dict[int, Any] = {400: Error, 401: Error, 403: Error, 404: Error, 422: Error, 429: Error}


class ImportOut(Schema):
    id: int
    status: str = Field(description="queued, running, done or failed.")
    percent: int
    original_name: str
    rows_read: int
    created: int
    updated: int
    unchanged: int
    suppressed: int
    rejected: int
    warnings: list[Any]
    error: str
    header: list[str]
    mapping: dict[str, str]
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class ImportOptions(Schema):
    topics: str = Field("", max_length=2000, description="Topic slugs, comma-separated.")
    confirmed: bool = Field(
        False, description="They consented already: imported active (`consent_note` says how)."
    )
    consent_note: str = Field("", max_length=2000, pattern=r"^[^\x00]*$")
    update_existing: bool = True
    mapping: str = Field(
        "",
        max_length=20_000,
        description='Column index → target, as JSON: {"0": "email", "1": "first_name", '
        '"3": "attr:plan", "4": "ignore"}. Empty: guessed from the header, as the dashboard '
        "proposes it.",
    )


class RejectionOut(Schema):
    line: int
    reason: str
    raw: str


class RejectionPage(Schema):
    data: list[RejectionOut]
    next_cursor: str | None


def import_out(job: ImportJob) -> dict:
    return {
        **{name: getattr(job, name) for name in ImportOut.model_fields if hasattr(job, name)},
        "header": [str(h) for h in job.options.get("header", [])],
        "mapping": {str(k): str(v) for k, v in (job.options.get("mapping") or {}).items()},
    }


def _mapping(raw: str, guessed: dict) -> dict[str, str]:
    if not raw.strip():
        return dict(guessed)
    try:
        mapping = json.loads(raw)
    except ValueError:
        raise ApiError(422, "mapping: not JSON.", field="mapping") from None
    if not isinstance(mapping, dict):
        raise ApiError(422, "mapping: a JSON object of column index → target.", field="mapping")
    targets = {"ignore", *STANDARD_TARGETS}
    targets |= {f"attr:{key}" for key in CustomField.objects.values_list("key", flat=True)}
    for column, target in mapping.items():
        if not str(column).isdigit() or target not in targets:
            raise ApiError(
                422,
                f"mapping: {column!r} → {target!r}: columns are indexes from 0, targets one "
                f"of ignore, {', '.join(STANDARD_TARGETS)}, or attr:<custom field key>.",
                field="mapping",
            )
    return {str(k): str(v) for k, v in mapping.items()}


@router.post("", response={202: ImportOut, **ERRORS}, summary="Start a CSV import")
def import_create(request: HttpRequest, file: File[UploadedFile], options: Form[ImportOptions]):
    """Upload a CSV file (multipart, field `file`): its encoding and delimiter are detected,
    its columns mapped (given or guessed) and the import queued. Poll GET /imports/{id}."""
    key = require_scope(request, "write")
    topics = topics_by_slug(
        [slug.strip() for slug in options.topics.split(",") if slug.strip()], field="topics"
    )
    if options.confirmed and not options.consent_note.strip():
        raise ApiError(
            422,
            "consent_note: say how these people consented: it is kept as their record.",
            field="consent_note",
        )
    try:
        job = import_job_create(
            file=file,
            name=file.name or "upload.csv",
            topics=[t.pk for t in topics],
            confirmed=options.confirmed,
            consent_note=options.consent_note,
            update_existing=options.update_existing,
            created_by=f"api:{key.name}",
        )
    except ImportError_ as exc:
        raise ApiError(422, str(exc), field="file") from None
    try:
        mapping = _mapping(options.mapping, job.options.get("mapping") or {})
        with transaction.atomic():
            import_job_start(
                job=job,
                mapping=mapping,
                topics=[t.pk for t in topics],
                confirmed=options.confirmed,
                consent_note=options.consent_note,
                update_existing=options.update_existing,
            )
            import_job_enqueue(job=job)
    except (ImportError_, ApiError) as exc:
        # Nothing to map later through the API: the file (personal data) goes now.
        job.file.delete(save=False)
        job.delete()
        if isinstance(exc, ApiError):
            raise
        raise ApiError(422, str(exc), field="mapping") from None
    return Status(202, import_out(job))


def _job(import_id: int) -> ImportJob:
    job = ImportJob.objects.filter(pk=import_id).first()
    if job is None:
        raise ApiError(404, f"No import {import_id}.")
    return job


@router.get("/{int:import_id}", response={200: ImportOut, **ERRORS})
def import_detail(request: HttpRequest, import_id: int):
    """Progress (percent of the file read) and, once done, the summary."""
    require_scope(request, "read")
    return import_out(_job(import_id))


class RejectionQuery(Schema):
    cursor: str | None = Field(None, pattern=r"^[0-9]{1,9}$", description="A line number.")
    limit: int = Field(500, ge=1, le=5000)


@router.get("/{int:import_id}/rejections", response={200: RejectionPage, **ERRORS})
def import_rejections(request: HttpRequest, import_id: int, query: Query[RejectionQuery]):
    """The rejected lines: their number in the file, why, and the line as it was."""
    require_scope(request, "read")
    job = _job(import_id)
    rows = job.rejections.order_by("line")
    if query.cursor:
        rows = rows.filter(line__gt=int(query.cursor))
    page = list(rows[: query.limit + 1])
    more = len(page) > query.limit
    page = page[: query.limit]
    return {"data": page, "next_cursor": str(page[-1].line) if more else None}
