"""The marketer's "Send a test": the draft to a few seed addresses, before the real send.

Not part of the exactly-once pipeline: nothing here touches the ledger, takes a lease or
counts against a rate. It builds each message with the campaign's own MessageFactory (links
and pixel untracked, subject marked [TEST]), always keeps a copy in the sandbox inbox, and
sends it through the campaign's own transport unless the campaign or its connection is in
test mode, so that what a seed address receives is what subscribers will.
"""

from subscribers.models import Subscriber
from templates_app.fields import recipient_context, recipient_contexts

from .messages import MessageFactory
from .models import Campaign, SandboxMessage
from .pipeline import Transport, _send_with_reconnect


def campaign_test_send(*, campaign: Campaign, addresses: list[str]) -> list[SandboxMessage]:
    """Send the draft to seed addresses: always captured in the sandbox inbox (and, unless the
    campaign or connection is in test mode, delivered to those addresses only)."""
    factory = MessageFactory(campaign, test_send=True)
    sample = dict(Subscriber.objects.filter(email__in=addresses).values_list("email", "pk"))
    recipients = recipient_contexts(sample.values())
    captured = []
    transport = Transport(campaign, factory)
    try:
        for address in addresses:
            pk = sample.get(address)
            built = factory.build(
                delivery_id=None,
                subscriber_id=pk or 0,
                email=address,
                recipient=(pk is not None and recipients.get(pk))
                or recipient_context(email=address),
            )
            built.subject = f"[TEST] {built.subject}"
            captured.append(
                SandboxMessage.objects.create(
                    campaign=campaign,
                    to=address,
                    subject=built.subject,
                    html=built.html,
                    text=built.text,
                    headers=built.headers,
                    raw=factory.signed_raw(built).decode("utf-8", errors="replace"),
                    is_test_send=True,
                )
            )
            if not transport.sandbox:
                _send_with_reconnect(transport, built)
    finally:
        transport.close()
    return captured
