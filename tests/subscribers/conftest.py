import pytest

from tests.support.factories import CustomFieldFactory, TopicFactory


@pytest.fixture
def topics(db):
    return [
        TopicFactory(name="Weekly", slug="weekly", public_name="Weekly news"),
        TopicFactory(name="Product", slug="product"),
        TopicFactory(name="Events", slug="events"),
    ]


@pytest.fixture
def custom_fields(db):
    return {
        "company": CustomFieldFactory(key="company", label="Company", type="text"),
        "score": CustomFieldFactory(key="score", label="Score", type="number"),
        "birthday": CustomFieldFactory(key="birthday", label="Birthday", type="date"),
        "vip": CustomFieldFactory(key="vip", label="VIP", type="boolean"),
        "plan": CustomFieldFactory(
            key="plan", label="Plan", type="choice", choices=["free", "pro"]
        ),
    }
