import pytest

from subscribers.models import CustomField, Topic


@pytest.fixture
def topics(db):
    return [
        Topic.objects.create(name="Weekly", slug="weekly", public_name="Weekly news"),
        Topic.objects.create(name="Product", slug="product"),
        Topic.objects.create(name="Events", slug="events"),
    ]


@pytest.fixture
def custom_fields(db):
    return {
        "company": CustomField.objects.create(key="company", label="Company", type="text"),
        "score": CustomField.objects.create(key="score", label="Score", type="number"),
        "birthday": CustomField.objects.create(key="birthday", label="Birthday", type="date"),
        "vip": CustomField.objects.create(key="vip", label="VIP", type="boolean"),
        "plan": CustomField.objects.create(
            key="plan", label="Plan", type="choice", choices=["free", "pro"]
        ),
    }
