"""Authentication of the API: ``Authorization: Bearer <key>``; scopes; the per-key limit.

The authenticated key is ``request.auth`` (an ApiKey). Views call ``require_scope`` first."""

from django.http import HttpRequest
from ninja.security import HttpBearer

from signup.protection import client_ip

from .errors import ApiError
from .keys import api_key_for_token, api_key_touch, ip_allowed, rate_take
from .models import ApiKey

# What each scope also grants: admin everything; write includes read.
IMPLIED: dict[str, set[str]] = {
    ApiKey.Scope.ADMIN: set(ApiKey.Scope.values),
    ApiKey.Scope.WRITE: {ApiKey.Scope.WRITE, ApiKey.Scope.READ},
    ApiKey.Scope.READ: {ApiKey.Scope.READ},
    ApiKey.Scope.SEND: {ApiKey.Scope.SEND},
}


def key_grants(key: ApiKey, scope: str) -> bool:
    return any(scope in IMPLIED[s] for s in key.scopes if s in IMPLIED)


def require_scope(request: HttpRequest, scope: str) -> ApiKey:
    """The request's key, or the API's 403 when the key does not grant ``scope``."""
    key = getattr(request, "auth", None)
    if not isinstance(key, ApiKey):
        raise ApiError(401, "Send an API key: Authorization: Bearer <key>.")
    if not key_grants(key, scope):
        raise ApiError(
            403, f"This API key lacks the {scope} scope.", code="scope_missing", field=None
        )
    return key


def authenticate(request: HttpRequest, token: str) -> ApiKey:
    """The key, checked: known and not revoked (401), from an allowed network (403), within
    its rate (429 with Retry-After). Cached on the request (the middleware asks first for
    idempotent replays)."""
    cached = getattr(request, "_api_key", None)
    if cached is not None:
        return cached
    key = api_key_for_token(token.strip())
    if key is None:
        raise ApiError(
            401,
            "This API key is not valid (unknown, mistyped or revoked).",
            headers={"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'},
        )
    ip = client_ip(request)
    if not ip_allowed(key, ip):
        raise ApiError(
            403, f"This API key cannot be used from {ip or 'an unknown address'}.", code="ip"
        )
    wait = rate_take(key=key)
    if wait:
        raise ApiError(
            429,
            f"Rate limit of {key.rate_per_minute} requests a minute reached for this key.",
            headers={"Retry-After": str(wait)},
        )
    api_key_touch(key=key, ip=ip)
    request._api_key = key  # type: ignore[attr-defined]
    return key


class ApiKeyAuth(HttpBearer):
    openapi_description = "An API key made in Settings → API keys: `Authorization: Bearer nfm_…`"

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey:
        return authenticate(request, token)


def bearer_token(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    return token
