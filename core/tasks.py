from celery import shared_task
from django.core.cache import cache


@shared_task
def worker_ping(token: str) -> None:
    """Leave a mark in the shared cache: proves a worker consumes the broker (tests, ops)."""
    cache.set(f"worker-ping:{token}", "pong", timeout=300)
