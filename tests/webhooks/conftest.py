import pytest

from tests.support.webhook_receiver import loopback_endpoints, receiver, subscribe

__all__ = ["loopback_endpoints", "receiver", "subscribe"]


@pytest.fixture(autouse=True)
def _loopback(loopback_endpoints):
    """Every webhook test may post to the loopback receiver."""
