"""One JSON error shape for every answer of the API:

    {"error": {"code": "not_found", "message": "No subscriber 12.", "field": null}}

``code`` is stable (clients branch on it), ``message`` is for people, ``field`` names the input
at fault when there is one (a dotted path into the body, or a query / header name).
"""

import logging

from django.db import DataError, transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

logger = logging.getLogger(__name__)

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    428: "precondition_required",
    429: "rate_limited",
    500: "server_error",
}


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None


class Error(Schema):
    error: ErrorDetail


class ApiError(Exception):
    """Raised anywhere under the API: becomes the error shape with this status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "",
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.message = message
        self.field = field
        self.headers = headers or {}


def error_response(
    status: int,
    message: str,
    *,
    code: str = "",
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    body = {
        "error": {
            "code": code or STATUS_CODES.get(status, "error"),
            "message": message,
            "field": field,
        }
    }
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _field_of(loc) -> str | None:
    """ninja's error location ("body", "payload", "email") as a dotted path a client knows:
    the parameter group and the schema's own name are dropped."""
    parts = [str(p) for p in loc or ()]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form", "file"):
        source, parts = parts[0], parts[1:]
        if source == "body" and parts and parts[0] in ("payload", "data", "body"):
            parts = parts[1:]
        if source in ("query", "path", "header") and len(parts) > 1:
            parts = parts[1:]  # the Query(...) schema's name
    return ".".join(parts) or None


def _validation(request: HttpRequest, exc) -> HttpResponse:
    first = exc.errors[0] if exc.errors else {}
    message = str(first.get("msg") or "The request is not valid.")
    field = _field_of(first.get("loc"))
    if first.get("type") == "json_invalid" or (field is None and "JSON" in message):
        return error_response(400, "The body is not valid JSON.", code="bad_json")
    if field:
        message = f"{field}: {message}"
    if len(exc.errors) > 1:
        message += f" (and {len(exc.errors) - 1} more)"
    return error_response(422, message, field=field)


def _roll_back() -> None:
    """A failed statement aborted the request's transaction (api.middleware opens one per
    write): mark it so that nothing more is tried in it and it is rolled back."""
    if transaction.get_connection().in_atomic_block:
        transaction.set_rollback(True)


def install(api: NinjaAPI) -> None:
    """Replace ninja's default handlers (``{"detail": ...}``) with the one shape."""

    @api.exception_handler(ApiError)
    def _api_error(request, exc: ApiError):
        return error_response(
            exc.status, exc.message, code=exc.code, field=exc.field, headers=exc.headers
        )

    api.add_exception_handler(NinjaValidationError, _validation)

    @api.exception_handler(AuthenticationError)
    def _unauthorized(request, exc):
        return error_response(
            401,
            "Send an API key: Authorization: Bearer <key>.",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )

    @api.exception_handler(HttpError)
    def _http_error(request, exc: HttpError):
        return error_response(exc.status_code, str(exc))

    @api.exception_handler(Http404)
    def _not_found(request, exc):
        return error_response(404, str(exc) or "Not found.")

    @api.exception_handler(DataError)
    def _data_error(request, exc):
        _roll_back()
        logger.warning(
            "API %s %s: a value the database refused: %s", request.method, request.path, exc
        )
        # A value PostgreSQL cannot hold (a NUL character, an out-of-range number) that the
        # schema let through: the client's input, not our failure.
        return error_response(400, "A value in the request cannot be stored.", code="bad_value")

    @api.exception_handler(Exception)
    def _unexpected(request, exc):
        _roll_back()
        logger.exception("API error on %s %s", request.method, request.path)
        return error_response(500, "Something went wrong on our side; it has been logged.")
