"""The REST API, version 1: ``api`` is mounted at /api/v1/ (nofailmail/urls.py).

Interactive docs at /api/v1/docs, the OpenAPI 3 schema at /api/v1/openapi.json."""

from ninja import NinjaAPI

from . import campaigns, catalog, content, imports, messages, signups, subscribers
from .auth import ApiKeyAuth
from .errors import install

# The docs' front page: what a developer who has never seen the project needs to get from a
# key to a signed webhook on their own endpoint (tests/e2e/test_developer_journey.py walks it).
DESCRIPTION = """
## Getting started

**1. Get an API key.** An admin creates it in the dashboard: *Settings → API keys*, with the
scopes it needs (`read`; `write`, which includes read; `send` for transactional messages;
`admin` for everything). The key (`nfm_…`) is shown once, when it is made: copy it then. Send
it on every call as `Authorization: Bearer nfm_…` (the *Authorize* button below takes it too).

**2. Sign a person up with double opt-in.** `POST /api/v1/signups` (scope `write`) with the
public id of one of your signup forms (*Signup forms → the form's embed code*) and the
person's fields, all steps at once:
`{"form": "Ab12Cd34", "fields": {"email": "ann@example.com", "consent": true}}` (add the
person's `"ip"` when you have it: it is kept with their consent and rate limited).
The sign-up goes through the form's own checks, consent text and rate limits, as if the person
had filled it in: it answers `status: "pending_confirmation"`, and the form's confirmation
email goes to the person. They become `active` only when they open its link and confirm;
then `subscriber.confirmed` is sent to your webhooks.

**3. Send a transactional message.** `POST /api/v1/messages` (scope `send`) with a template's
id (`GET /api/v1/templates`), the recipient and the merge values the template uses:
`{"template": 12, "to": "ann@example.com", "data": {"order_number": "A-1001"}}`. It is sent
at once, on a queue of its own, through the same connections, suppression check and tracking
as campaigns: `delivery.sent`, then the recipient's opens and clicks, reach your webhooks.
Give an `Idempotency-Key` header so that a retried request never sends twice.

**4. Receive signed webhooks.** In the dashboard, *Webhooks → New endpoint*: your HTTPS URL
and the events it wants, e.g. `subscriber.confirmed`, `delivery.sent`, `open.human`,
`click.human` (opens and clicks by people, not by privacy proxies or link scanners). The
endpoint's page shows its signing secret (`whsec_…`). Each event is one JSON POST,
`{"type": "delivery.sent", "timestamp": "…", "data": {…}}`, signed as the
[Standard Webhooks](https://www.standardwebhooks.com/) specification says: the headers
`webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,` and the base64
HMAC-SHA256 of `webhook-id.webhook-timestamp.body`, keyed with the secret's base64 part).
Verify them with any Standard Webhooks library, e.g. in Python
`standardwebhooks.Webhook(secret).verify(body, headers)`. Events are delivered at least once
and retried with exponential backoff for a day: de-duplicate on `webhook-id`, the same on
every try.

## Conventions

Errors are always `{"error": {"code", "message", "field"}}`. Every POST accepts an
`Idempotency-Key` header: the same key with the same request answers the first answer
again, with another request 422. Updates take `If-Match` with the ETag of a GET (412 when
it changed). Each key has a rate limit: past it, `429` with `Retry-After`.
"""

api = NinjaAPI(
    title="NoFailMail API",
    version="1",
    description=DESCRIPTION,
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
