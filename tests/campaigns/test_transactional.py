"""Transactional messages: one template, one recipient, with data, through the campaigns'
pipeline and ledger; idempotent by key; sent by their own queue while a campaign is sending."""

import time

import pytest
from django.db.models import Count

from analytics.models import Event
from campaigns.models import Campaign, Delivery
from campaigns.services import campaign_start
from campaigns.transactional import (
    TransactionalError,
    send_transactional,
    transactional_deliver,
)
from tests.support.factories import (
    CampaignFactory,
    SendingConnectionFactory,
    SubscriberFactory,
    SuppressionFactory,
    TemplateFactory,
    make_audience,
)
from tests.support.sending import QUEUE
from tests.support.smtp import html_of, text_of
from tests.support.workers import Worker, purge_queue

ORDER_HTML = (
    '<html><body><p>Hi {{ first_name|default:"there" }}, order {{ order_number }} is '
    'confirmed: {{ total }}.</p><a href="https://shop.example.com/orders">Your orders</a>'
    "</body></html>"
)


@pytest.fixture
def order_template(db):
    return TemplateFactory(
        name="Order confirmation", subject="Order {{ order_number }}", html_body=ORDER_HTML
    )


def test_it_sends_the_template_with_the_data_through_the_ledger(order_template, smtp_sink):
    SubscriberFactory(active=True, email="ada@example.com", first_name="Ada")
    connection = SendingConnectionFactory(sink=smtp_sink)
    result = send_transactional(
        template=order_template,
        to_email="Ada@Example.com",
        data={"order_number": "A-1001", "total": "€42 <b>"},
        idempotency_key="order-A-1001",
        connection=connection,
    )
    assert result.created
    assert transactional_deliver(delivery_id=result.delivery.pk) == "sent"
    [message] = smtp_sink.parsed()
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Order A-1001"
    html = html_of(message)
    assert "Hi Ada, order A-1001 is confirmed: €42 &lt;b&gt;." in html  # data is escaped
    assert "/t/c/" in html and "shop.example.com" not in html  # links tracked
    assert "A-1001" in text_of(message)
    delivery = Delivery.objects.get(pk=result.delivery.pk)
    assert delivery.status == "sent" and delivery.sent_at is not None
    assert message["Message-ID"] == delivery.message_id
    campaign = delivery.campaign
    assert campaign.kind == Campaign.Kind.TRANSACTIONAL and campaign.template == order_template
    # The server's "250" is recorded as the delivery, as for a campaign.
    assert Event.objects.filter(delivery_id=delivery.pk, kind="delivered").exists()


def test_a_replayed_idempotency_key_sends_nothing_twice(order_template, smtp_sink):
    connection = SendingConnectionFactory(sink=smtp_sink)
    first = send_transactional(
        template=order_template,
        to_email="bo@example.com",
        data={"order_number": "1"},
        idempotency_key="k-1",
        connection=connection,
    )
    transactional_deliver(delivery_id=first.delivery.pk)
    again = send_transactional(
        template=order_template,
        to_email="bo@example.com",
        data={"order_number": "1"},
        idempotency_key="k-1",
        connection=connection,
    )
    assert not again.created and again.delivery.pk == first.delivery.pk
    assert transactional_deliver(delivery_id=again.delivery.pk) == "not pending"
    other = send_transactional(
        template=order_template,
        to_email="bo@example.com",
        data={"order_number": "2"},
        idempotency_key="k-2",
        connection=connection,
    )
    transactional_deliver(delivery_id=other.delivery.pk)
    assert len(smtp_sink.messages) == 2
    assert Campaign.objects.filter(kind="transactional").count() == 1


def test_a_suppressed_address_is_skipped_at_sending_time(order_template, smtp_sink):
    result = send_transactional(
        template=order_template,
        to_email="gone@example.com",
        idempotency_key="x",
        connection=SendingConnectionFactory(sink=smtp_sink),
    )
    SuppressionFactory(email="gone@example.com")
    assert transactional_deliver(delivery_id=result.delivery.pk) == "skipped"
    assert smtp_sink.messages == []
    delivery = Delivery.objects.get(pk=result.delivery.pk)
    assert delivery.status == "skipped" and "suppressed" in delivery.error


def test_a_refused_recipient_fails_and_is_filed_as_a_bounce(order_template, smtp_sink):
    result = send_transactional(
        template=order_template,
        to_email="bad-nobody@example.com",
        idempotency_key="y",
        connection=SendingConnectionFactory(sink=smtp_sink),
    )
    assert transactional_deliver(delivery_id=result.delivery.pk) == "failed"
    assert Event.objects.filter(delivery_id=result.delivery.pk, kind="bounced").exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"to_email": "not an address"}, "to"),
        ({"to_email": ""}, "to"),
        ({"to_email": "a@example.com", "data": ["a list"]}, "data"),
        ({"to_email": "a@example.com", "data": {"big": "x" * 70_000}}, "data"),
        ({"to_email": "a@example.com", "idempotency_key": "k" * 201}, "key"),
    ],
)
def test_bad_requests_get_a_clear_error_naming_the_field(order_template, kwargs, field):
    with pytest.raises(TransactionalError) as caught:
        send_transactional(template=order_template, **kwargs)
    assert caught.value.field == field
    assert not Delivery.objects.exists()


def test_hidden_campaigns_stay_out_of_the_campaign_list(order_template, editor_client):
    send_transactional(template=order_template, to_email="c@example.com", idempotency_key="z")
    assert "Transactional:" not in editor_client.get("/campaigns/").content.decode()


@pytest.mark.worker
def test_a_transactional_message_goes_out_while_a_large_campaign_is_sending(
    transactional_db, smtp_sink, own_queue
):
    """Two workers as deployed: campaigns on theirs (busy with a slow campaign), transactional
    messages on their own queue, which answers in seconds."""
    purge_queue()
    from django.conf import settings

    campaigns_worker = Worker(concurrency=1, queues=[QUEUE], CELERY_QUEUE=QUEUE)
    fast_worker = Worker(concurrency=1, queues=[settings.CELERY_TRANSACTIONAL_QUEUE])
    try:
        campaigns_worker.wait_ready()
        fast_worker.wait_ready()
        topic, _ = make_audience(600)
        slow = SendingConnectionFactory(
            name="slow",
            sending_domain="sender.example",
            rate_per_second=20,
            options={"host": "127.0.0.1", "port": smtp_sink.port},
        )
        campaign = CampaignFactory(topic=topic, connection=slow, parallelism=1)
        campaign_start(campaign=campaign)
        smtp_sink.wait_for(20, timeout=60)  # the campaign is under way
        started = time.monotonic()
        result = send_transactional(
            template=TemplateFactory(name="Reset", html_body="<p>Reset: {{ code }}</p>"),
            to_email="urgent@example.com",
            data={"code": "123456"},
            idempotency_key="reset-1",
            connection=SendingConnectionFactory(sink=smtp_sink),
        )
        while "urgent@example.com" not in smtp_sink.recipients():
            assert time.monotonic() - started < 20, fast_worker.output()
            time.sleep(0.05)
        waited = time.monotonic() - started
        counts = dict(
            Delivery.objects.filter(campaign=campaign)
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        assert counts.get("pending", 0) > 100, counts  # the campaign was still sending
        assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.RUNNING
        assert waited < 10
        # Its outcome is written just after the server's "250".
        while Delivery.objects.get(pk=result.delivery.pk).status != "sent":
            assert time.monotonic() - started < 20, fast_worker.output()
            time.sleep(0.05)
    finally:
        campaigns_worker.stop()
        fast_worker.stop()
