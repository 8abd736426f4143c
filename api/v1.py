"""The REST API, version 1: ``api`` is mounted at /api/v1/ (nofailmail/urls.py).

Interactive docs at /api/v1/docs, the OpenAPI 3 schema at /api/v1/openapi.json."""

from ninja import NinjaAPI

from . import campaigns, catalog, content, imports, messages, signups, subscribers
from .auth import ApiKeyAuth
from .errors import install

api = NinjaAPI(
    title="NoFailMail API",
    version="1",
    description=(
        "Every call needs an API key (Settings → API keys): `Authorization: Bearer nfm_…`. "
        'Errors are always `{"error": {"code", "message", "field"}}`. Every POST '
        "accepts an `Idempotency-Key` header: the same key with the same request answers "
        "the first answer again, with another request 422. Updates take `If-Match` with the "
        "ETag of a GET (412 when it changed)."
    ),
    auth=ApiKeyAuth(),
    urls_namespace="api-v1",
)
install(api)

api.add_router("/subscribers", subscribers.router)
api.add_router("/signups", signups.router)
api.add_router("/imports", imports.router)
api.add_router("/campaigns", campaigns.router)
api.add_router("/", catalog.router)
api.add_router("/", content.router)
api.add_router("/messages", messages.router)
