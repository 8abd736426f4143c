"""What every /api/ answer goes through: Idempotency-Key replays, the write log, and the one
error shape for the answers Django or ninja make before a view runs (unknown path, 405 ...)."""

import datetime as dt
import hashlib

from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from signup.protection import client_ip

from .auth import authenticate, bearer_token
from .errors import ApiError, error_response
from .models import IdempotencyRecord

API_PREFIX = "/api/"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
# A first request still "running" after this long died with its process: a retry may take over.
IN_FLIGHT_TIMEOUT = dt.timedelta(minutes=5)
# Headers a replay repeats.
KEPT_HEADERS = ("Content-Type", "ETag", "Location", "Last-Modified")


def _request_hash(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    for part in (request.method or "", request.path, request.META.get("QUERY_STRING", "")):
        digest.update(part.encode("utf-8", "replace") + b"\0")
    digest.update(request.body)
    return digest.hexdigest()


def _write_log(request: HttpRequest, key, status: int, idempotency_key: str) -> None:
    """The write log's line (``ApiWriteLog``), inserted with a plain cursor: every API write
    pays for it, and the ORM's model save cost more than the insert itself."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO api_apiwritelog (key_id, method, path, status, ip, idempotency_key, at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                key.pk,
                request.method or "",
                request.path[:500],
                status,
                client_ip(request),
                idempotency_key[:255],
                timezone.now(),
            ],
        )


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(bytes(record.response_body), status=record.status)
    for name, value in (record.response_headers or {}).items():
        response[name] = value
    response["Idempotent-Replayed"] = "true"
    return response


class ApiMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        idempotency_key = request.headers.get("Idempotency-Key")
        if request.method not in WRITES:
            return self._shaped(self.get_response(request))
        if request.method == "POST" and idempotency_key is not None:
            response = self._idempotent(request, idempotency_key)
        else:
            response = self._logged(request, "")
        return self._shaped(response)

    def _logged(self, request: HttpRequest, idempotency_key: str) -> HttpResponse:
        """A write and its line in the write log, in one transaction: one commit (one WAL
        flush) per request, and no write without its log line. The services keep their own
        atomic blocks (savepoints here), so a refusal half-way still undoes its part."""
        with transaction.atomic():
            response = self.get_response(request)
            key = getattr(request, "_api_key", None)
            # A database error the API answered (errors.py) leaves the transaction to roll back.
            if key is not None and response.status_code < 500 and not transaction.get_rollback():
                _write_log(request, key, response.status_code, idempotency_key)
        return response

    def _idempotent(self, request: HttpRequest, idempotency_key: str) -> HttpResponse:
        if not 1 <= len(idempotency_key) <= 255 or not idempotency_key.isprintable():
            return error_response(
                400,
                "Idempotency-Key must be 1 to 255 printable characters.",
                field="Idempotency-Key",
            )
        token = bearer_token(request)
        if token is None:  # the view answers 401 in the usual way
            return self._logged(request, idempotency_key)
        try:
            key = authenticate(request, token)
        except ApiError as exc:
            return error_response(
                exc.status, exc.message, code=exc.code, field=exc.field, headers=exc.headers
            )
        request_hash = _request_hash(request)
        now = timezone.now()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    key=key, idempotency_key=idempotency_key, request_hash=request_hash
                )
        except IntegrityError:
            record = IdempotencyRecord.objects.get(key=key, idempotency_key=idempotency_key)
            if record.request_hash != request_hash:
                return error_response(
                    422,
                    "This Idempotency-Key was used with another request: use a new key for "
                    "a new request.",
                    code="idempotency_key_reused",
                    field="Idempotency-Key",
                )
            if record.status:
                return _replay(record)
            taken = IdempotencyRecord.objects.filter(
                pk=record.pk, status=0, created_at__lt=now - IN_FLIGHT_TIMEOUT
            ).update(created_at=now)
            if not taken:
                return error_response(
                    409,
                    "A request with this Idempotency-Key is still being processed; retry "
                    "in a moment.",
                    code="idempotency_in_progress",
                    field="Idempotency-Key",
                    headers={"Retry-After": "1"},
                )
        response = self._logged(request, idempotency_key)
        if response.status_code >= 500 or response.status_code == 429 or response.streaming:
            # Not an answer to keep: the same key may try again.
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            return response
        response = self._shaped(response)
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            status=response.status_code,
            response_body=response.content,
            response_headers={h: response[h] for h in KEPT_HEADERS if response.has_header(h)},
        )
        return response

    @staticmethod
    def _shaped(response: HttpResponse) -> HttpResponse:
        """An error Django made (a 404 for an unknown path, a 405, a 400 for a NUL in the
        path ...) in the API's shape; the API's own errors are JSON already."""
        if response.status_code < 400 or response.get("Content-Type", "").startswith(
            "application/json"
        ):
            return response
        message = {
            404: "No such endpoint: see /api/v1/docs.",
            405: f"Method not allowed here (allowed: {response.get('Allow', '-')}).",
        }.get(response.status_code)
        if message is None:
            text = b"" if response.streaming else response.content[:300]
            message = text.decode("utf-8", "replace").strip() or "The request was refused."
            if message.lstrip().startswith("<"):
                message = "The request was refused."
        shaped = error_response(response.status_code, message)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if response.has_header(header):
                shaped[header] = response[header]
        return shaped
