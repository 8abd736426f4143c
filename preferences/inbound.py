"""Unsubscribe by email: mail sent to the List-Unsubscribe mailto: address.

It arrives through anymail's inbound webhook (any ESP that anymail supports), authenticated by
ANYMAIL WEBHOOK_SECRET. The signed token in the subject names the subscriber; when a mail client
dropped the subject, the sender's own address is used, never an address found in the body.
"""

import logging
import re

from anymail.signals import inbound
from django.conf import settings
from django.dispatch import receiver

from core.recipient_links import UNSUBSCRIBE, read_recipient_token
from core.tokens import BadToken
from subscribers.models import Subscriber
from subscribers.selectors import subscribers_with_email

from .services import subscriber_leave

logger = logging.getLogger(__name__)
_TOKEN_RE = re.compile(r"unsubscribe\s+(\S+)", re.IGNORECASE)


def _addressed_to_us(message) -> bool:
    wanted = settings.UNSUBSCRIBE_MAILTO.lower()
    for address in message.to or []:
        spec = address.addr_spec.lower()
        # With no fixed address, campaigns use unsubscribe@<their sending domain>.
        if spec == wanted or (not wanted and spec.split("@")[0] == "unsubscribe"):
            return True
    return False


def _subscriber_for(message) -> tuple[Subscriber | None, int | None]:
    """The subscriber, and the delivery whose header carried the token (its campaign counts
    the leave), or only the sender with no delivery."""
    match = _TOKEN_RE.search(message.subject or "")
    if match:
        try:
            subscriber_id, delivery_id = read_recipient_token(UNSUBSCRIBE, match.group(1))
        except BadToken:
            logger.info("inbound unsubscribe: bad token in subject, using the sender")
        else:
            return Subscriber.objects.filter(pk=subscriber_id).first(), delivery_id
    sender = message.from_email.addr_spec if message.from_email else ""
    if not sender:
        return None, None
    return subscribers_with_email(sender).first(), None


@receiver(inbound, dispatch_uid="preferences.inbound_unsubscribe")
def handle_inbound_unsubscribe(sender, event, esp_name, **kwargs):
    message = event.message
    if message is None or not _addressed_to_us(message):
        return
    subscriber, delivery_id = _subscriber_for(message)
    if subscriber is None:
        logger.info("inbound unsubscribe from an unknown sender (%s)", esp_name)
        return
    subscriber_leave(subscriber=subscriber, source="mailto", delivery_id=delivery_id)
