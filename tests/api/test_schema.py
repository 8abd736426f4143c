"""schemathesis runs every operation of the published OpenAPI schema against the real app
(Django's WSGI handler, every middleware): valid and invalid inputs, checking that nothing
answers 500 and that every answer (status, headers, body) is the one the schema documents."""

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from api.keys import api_key_create
from tests.support.factories import (
    CampaignFactory,
    CustomFieldFactory,
    SegmentFactory,
    SignupFormFactory,
    SubscriberFactory,
    SuppressionFactory,
    TemplateFactory,
    TopicFactory,
)

# The schema as the app serves it (read through the WSGI app when the module is collected).
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", get_wsgi_application())


@pytest.fixture
def _keep_the_test_connection():
    """The bare WSGI handler closes the database connection after each request (Django's test
    client stops that): here it would close the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def auth(db, _keep_the_test_connection) -> dict[str, str]:
    """Data for the operations to find, and an admin key whose rate limit the run cannot
    exhaust."""
    news = TopicFactory(slug="news")
    CustomFieldFactory(key="plan")
    for _ in range(3):
        SubscriberFactory(active=True, topics=[news], attributes={"plan": "pro"})
    SuppressionFactory()
    SegmentFactory(
        rules={"match": "all", "conditions": [{"field": "topic", "op": "in", "value": ["news"]}]}
    )
    TemplateFactory()
    CampaignFactory(topic=news)
    SignupFormFactory()
    new = api_key_create(name="schemathesis", scopes=["admin"], rate_per_minute=1_000_000)
    return {"Authorization": f"Bearer {new.token}"}


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented_and_never_500(case, auth):
    # Every check but two that judge meaning, not shape: a schema-valid body may still be
    # refused for what it says (an address that is not one, an unknown topic: 422), and
    # pydantic's lax parsing accepts what JSON Schema calls a type error (0 for false).
    # Each call in a savepoint of the test's transaction, as each request has its own
    # transaction (or autocommit) in production: a refused value (an id past bigint, 400)
    # must not poison the next call's queries.
    with transaction.atomic():
        case.call_and_validate(
            headers=auth, excluded_checks=[positive_data_acceptance, negative_data_rejection]
        )
