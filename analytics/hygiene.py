"""List hygiene: engagement scores and the sunset policy.

Sunset: a subscriber with no human open or click in ``inactive_days`` (though mail reached
them in that time) gets the re-engagement campaign; ``grace_days`` after it was sent to them,
still with no human engagement, they are unsubscribed. Preview first, then run.
"""

from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from campaigns.models import Delivery
from subscribers.models import Subscriber, Subscription, Suppression, email_hash

from .ingest import engagement_score_sql
from .models import SunsetPolicy
from .selectors import engagement_q


def sunset_policy() -> SunsetPolicy:
    policy = SunsetPolicy.objects.order_by("pk").first()
    return policy or SunsetPolicy.objects.create()


def inactive_subscribers(policy: SunsetPolicy, *, now=None) -> QuerySet[Subscriber]:
    now = now or timezone.now()
    since = now - timedelta(days=policy.inactive_days)
    reached = Delivery.objects.filter(
        subscriber=OuterRef("pk"), sent_at__gte=since, status=Delivery.Status.SENT
    )
    return (
        Subscriber.objects.filter(status=Subscriber.Status.ACTIVE, created_at__lt=since)
        .filter(Exists(reached))
        .filter(engagement_q("not_engaged", policy.inactive_days))
    )


def sunset_preview(policy: SunsetPolicy, *, now=None) -> dict[str, QuerySet[Subscriber]]:
    """Who the policy would touch now: 'reengage' (to receive the re-engagement campaign)
    and 'unsubscribe' (it reached them grace_days ago and they stayed silent)."""
    now = now or timezone.now()
    inactive = inactive_subscribers(policy, now=now)
    if policy.reengagement_campaign_id is None:
        return {"reengage": inactive, "unsubscribe": Subscriber.objects.none()}
    got_it = Delivery.objects.filter(
        subscriber=OuterRef("pk"),
        campaign_id=policy.reengagement_campaign_id,
        status=Delivery.Status.SENT,
    )
    grace_over = got_it.filter(sent_at__lte=now - timedelta(days=policy.grace_days))
    return {
        "reengage": inactive.exclude(Exists(got_it)),
        "unsubscribe": inactive.filter(Exists(grace_over)),
    }


def sunset_preview_refresh(*, policy: SunsetPolicy, now=None, sample: int = 20) -> dict:
    """Count (and sample) who the policy touches now, and keep it on the policy."""
    now = now or timezone.now()
    preview = sunset_preview(policy, now=now)
    data: dict[str, Any] = {"settings": policy.settings_key()}
    for name, queryset in preview.items():
        data[name] = queryset.count()
        data[f"{name}_sample"] = list(
            queryset.order_by("pk").values_list("email", flat=True)[:sample]
        )
    SunsetPolicy.objects.filter(pk=policy.pk).update(preview=data, preview_at=now)
    policy.preview, policy.preview_at = data, now
    return data


def sunset_run(*, policy: SunsetPolicy, now=None) -> int:
    """Unsubscribe the silent ones (set-based); returns how many."""
    now = now or timezone.now()
    ids = list(sunset_preview(policy, now=now)["unsubscribe"].values_list("pk", flat=True))
    with transaction.atomic():
        Subscriber.objects.filter(pk__in=ids, status=Subscriber.Status.ACTIVE).update(
            status=Subscriber.Status.UNSUBSCRIBED, updated_at=now
        )
        Subscription.objects.filter(
            subscriber_id__in=ids, status=Subscription.Status.ACTIVE
        ).update(status=Subscription.Status.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now)
        Suppression.objects.bulk_create(
            [
                Suppression(
                    email_hash=h,
                    email=e,
                    reason=Suppression.Reason.UNSUBSCRIBED,
                    note=f"Sunset policy: no human engagement in {policy.inactive_days} days",
                    event="sunset",
                )
                for h, e in _hashes(ids)
            ],
            ignore_conflicts=True,
        )
        SunsetPolicy.objects.filter(pk=policy.pk).update(last_run_at=now, last_run_count=len(ids))
    return len(ids)


def _hashes(ids: list[int]):
    for email in Subscriber.objects.filter(pk__in=ids).values_list("email", flat=True):
        yield email_hash(email), email


def engagement_scores_refresh() -> int:
    """Recompute every score (recency decays with time even when nothing happens), and the
    sunset preview with them."""
    policy = SunsetPolicy.objects.order_by("pk").first()
    if policy is not None:
        sunset_preview_refresh(policy=policy)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE analytics_subscriberengagement SET score = {engagement_score_sql()}"  # noqa: S608 (a constant)
        )
        return cursor.rowcount
