import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from .models import IdempotencyRecord


@shared_task
def idempotency_records_purge() -> int:
    """Forget Idempotency-Key answers older than API_IDEMPOTENCY_HOURS (a retry comes within
    minutes; a day is generous), so the table stays small."""
    cutoff = timezone.now() - dt.timedelta(hours=settings.API_IDEMPOTENCY_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
