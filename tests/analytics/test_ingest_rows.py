"""What ingestion reads and writes in bulk equals what the ORM would read and write."""

from datetime import timedelta

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from analytics.ingest import Fact, _activity_of, ingest_facts
from analytics.models import DeliveryActivity

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0"


def test_activity_rows_read_for_a_flush_equal_the_orm_rows(sent_campaign):
    _campaign, links, deliveries = sent_campaign
    start = timezone.now() - timedelta(hours=1, microseconds=123)
    ingest_facts(
        [
            Fact(
                uid=f"a{i}",
                kind=kind,
                occurred_at=start + timedelta(minutes=i),
                delivery_id=deliveries[i % 2].pk,
                link_id=links[0].pk if kind == "clicked" else None,
                ip="81.2.69.160",
                user_agent=CHROME,
                method="GET",
            )
            for i, kind in enumerate(["opened", "clicked", "opened", "clicked"])
        ]
    )
    fields = [f.attname for f in DeliveryActivity._meta.concrete_fields]
    ids = {d.pk for d in deliveries}
    fast = _activity_of(ids)
    orm = {a.delivery_id: a for a in DeliveryActivity.objects.filter(delivery_id__in=ids)}
    assert set(fast) == set(orm) == {deliveries[0].pk, deliveries[1].pk}
    for delivery_id, a in orm.items():
        assert [getattr(fast[delivery_id], n) for n in fields] == [getattr(a, n) for n in fields]
    assert fast[deliveries[1].pk].first_human_click_at == start + timedelta(minutes=1)
    assert fast[deliveries[1].pk].human_link_ids == [links[0].pk]


def test_a_flush_finds_deliveries_by_message_id_through_the_ledgers_partial_index(
    sent_campaign,
):
    """The ledger indexes Message-IDs only where one was set (the snapshot's rows have none):
    ingestion's lookup must say ``<> ''`` for PostgreSQL to use that index, which it cannot
    prove by itself from a list of over 100 ids (a 10M ledger would be scanned)."""
    _campaign, _links, deliveries = sent_campaign
    for n, d in enumerate(deliveries):
        d.message_id = f"<esp-{n}@mail.example>"
        d.save(update_fields=["message_id"])
    now = timezone.now()
    facts = [
        Fact(uid=f"m{i}", kind="delivered", occurred_at=now, message_id=f"esp-{i}@mail.example")
        for i in range(150)  # three of ours, the rest unknown to the ledger
    ]
    with CaptureQueriesContext(connection) as queries:
        ingest_facts(facts)
    (lookup,) = [q["sql"] for q in queries if '"message_id" IN' in q["sql"]]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + lookup)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "delivery_message_id" in plan, plan
    activity = DeliveryActivity.objects.filter(delivery__in=deliveries)
    assert activity.filter(esp_status="delivered").count() == len(deliveries)
