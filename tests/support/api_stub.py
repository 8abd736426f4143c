"""A stand-in for the API app's contract, for testing api/messages.py before the lead wires it
into the real API (api/v1.py's NinjaAPI, api/auth.py's keys): ``request.auth`` is a key with
scopes and ``api.auth.require_scope(request, scope)`` answers 403 outside them. Used as the
ROOT_URLCONF of the tests that need it; the real api.auth wins when it exists."""

import importlib.util
import sys
import types
from dataclasses import dataclass, field

from django.urls import path
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.security import HttpBearer


@dataclass
class StubKey:
    name: str
    scopes: set[str] = field(default_factory=set)


KEYS = {"send-key": StubKey("sender", {"send"}), "read-key": StubKey("reader", {"read"})}


def require_scope(request, scope: str) -> None:
    if scope not in request.auth.scopes:
        raise HttpError(403, f"This API key has no {scope!r} scope.")


if "api.auth" not in sys.modules and importlib.util.find_spec("api.auth") is None:
    stub = types.ModuleType("api.auth")
    stub.require_scope = require_scope  # type: ignore[attr-defined]
    sys.modules["api.auth"] = stub


class Bearer(HttpBearer):
    def authenticate(self, request, token):
        return KEYS.get(token)


from api.messages import router  # noqa: E402 (after the stub is in place)
from nofailmail import urls as project_urls  # noqa: E402

api = NinjaAPI(title="test", urls_namespace="api-stub", auth=Bearer())
api.add_router("/messages", router)
# The app's own URLs too: messages link to the preference center and the tracking endpoints.
urlpatterns = [path("api/v1/", api.urls), *project_urls.urlpatterns]
