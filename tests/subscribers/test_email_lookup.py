from django.db import connection

from subscribers.selectors import subscribers_with_email
from tests.support.factories import SubscriberFactory


def test_lookup_by_address_ignores_case_and_uses_the_unique_index(db):
    SubscriberFactory(email="ada@example.com")
    assert subscribers_with_email("  ADA@Example.com ").get().email == "ada@example.com"
    queryset = subscribers_with_email("ada@example.com")
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SET enable_seqscan = on")
    assert "subscriber_email_ci_unique" in plan
