from django.utils import formats, timezone

from subscribers.models import Subscriber


def is_paused(subscriber: Subscriber) -> bool:
    return bool(subscriber.paused_until and subscriber.paused_until > timezone.now())


def paused_until_display(subscriber: Subscriber) -> str:
    return formats.date_format(timezone.localtime(subscriber.paused_until), "DATE_FORMAT")


def editable_fields() -> list:
    """Custom fields the marketer lets subscribers edit themselves."""
    from .models import PreferenceCenterSettings

    return list(PreferenceCenterSettings.load().editable_fields.order_by("label", "id"))


def campaign_for_delivery(delivery_id: int | None) -> int | None:
    """The campaign whose link the recipient followed (None for links not from a campaign)."""
    if delivery_id is None:
        return None
    from campaigns.models import Delivery

    return Delivery.objects.filter(pk=delivery_id).values_list("campaign_id", flat=True).first()
