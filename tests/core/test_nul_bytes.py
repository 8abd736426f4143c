"""A NUL byte in a search or filter box answers the page, never a 500 (PostgreSQL text cannot
hold NUL)."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from subscribers.services import subscriber_create
from tests.support.factories import (
    CampaignFactory,
    CustomFieldFactory,
    SegmentFactory,
    TopicFactory,
)

pytestmark = pytest.mark.django_db

# Every filter or search key a dashboard view reads from the query string.
KEYS = [
    "q", "status", "topic", "segment", "attr", "attr_value", "after", "before", "campaign",
    "email", "kind", "page", "seen", "subscriber", "template", "to", "version",
]  # fmt: skip
NUL_QUERY = "&".join(f"{key}=x%00y" for key in KEYS)


def _plain_urls(resolver: URLResolver, prefix: str = "", namespace: str = "") -> list[str]:
    """The names of every page that takes no argument (the dashboard's list pages)."""
    names = []
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            if entry.namespace != "admin":
                names += _plain_urls(entry, prefix, inner)
        elif isinstance(entry, URLPattern) and entry.name and not entry.pattern.regex.groups:
            names.append(f"{namespace}{entry.name}")
    return names


@pytest.fixture
def some_data(db):
    TopicFactory(name="Weekly", slug="weekly")
    CustomFieldFactory(key="company", label="Company", type="text")
    subscriber_create(email="ann@example.com", attributes={"company": "Acme"})
    SegmentFactory(name="All", rules={"match": "all", "conditions": []})
    return CampaignFactory(bare=True, name="Spring", status="finished")


def test_every_list_page_answers_a_nul_in_its_filters(admin_client, some_data):
    names = _plain_urls(get_resolver())
    assert "subscribers:list" in names and "campaigns:sandbox" in names
    for name in names:
        url = reverse(name)
        if url.startswith("/anymail/"):
            continue  # ESP webhooks (POST, signed), not pages
        response = admin_client.get(f"{url}?{NUL_QUERY}")
        assert response.status_code < 500, (url, response.status_code)


def test_the_subscriber_search_ignores_the_nul(admin_client, some_data):
    response = admin_client.get(reverse("subscribers:list") + "?q=ann%00")
    assert response.status_code == 200 and b"ann@example.com" in response.content
    response = admin_client.get(reverse("subscribers:list") + "?attr=company&attr_value=Ac%00me")
    assert response.status_code == 200


def test_a_nul_in_a_form_post_or_a_path_is_no_500(admin_client, some_data):
    response = admin_client.post(reverse("subscribers:bulk"), {"action": "x\x00", "q": "a\x00"})
    assert response.status_code < 500
    response = admin_client.get("/forms/f/abc%00def/")
    assert response.status_code in (400, 404)
