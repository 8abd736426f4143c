"""The sandbox inbox pages past its first screen and finds a message by recipient or subject."""

import re

import pytest
from django.urls import reverse

from campaigns.models import SandboxMessage
from tests.support.factories import SandboxMessageFactory

pytestmark = pytest.mark.django_db

INBOX = reverse("campaigns:sandbox")


@pytest.fixture
def captured():
    # 260 rows: built by the factory, written in one INSERT (260 creates are slow).
    SandboxMessage.objects.bulk_create(
        SandboxMessageFactory.build(to=f"r{i:03d}@example.com", subject=f"Issue {i:03d}")
        for i in range(260)
    )


def _shown(body: str) -> list[str]:
    return re.findall(r"<td>(r\d{3}@example\.com)</td>", body)


def _link(body: str, label: str) -> str:
    match = re.search(r'href="([^"]+)">[^<]*' + label, body)
    return match.group(1).replace("&amp;", "&") if match else ""


def test_it_pages_through_every_message_past_the_latest_200(viewer_client, captured):
    seen, url = [], INBOX
    while url:
        body = viewer_client.get(INBOX + url.removeprefix(INBOX)).content.decode()
        seen += _shown(body)
        url = _link(body, "Older")
    assert len(seen) == 260 == len(set(seen))
    assert seen[0] == "r259@example.com" and seen[-1] == "r000@example.com"


def test_the_newer_link_goes_back_a_page(viewer_client, captured):
    first = viewer_client.get(INBOX).content.decode()
    second = viewer_client.get(INBOX + _link(first, "Older")).content.decode()
    back = viewer_client.get(INBOX + _link(second, "Newer")).content.decode()
    assert _shown(back) == _shown(first)


def test_it_searches_by_recipient_and_subject(viewer_client, captured):
    assert _shown(viewer_client.get(INBOX, {"q": "r007@"}).content.decode()) == ["r007@example.com"]
    assert _shown(viewer_client.get(INBOX, {"q": "issue 012"}).content.decode()) == [
        "r012@example.com"
    ]
    # The oldest message, far past the first page, is found too.
    assert _shown(viewer_client.get(INBOX, {"q": "r000"}).content.decode()) == ["r000@example.com"]


def test_junk_search_and_cursors_answer_the_page(viewer_client, captured):
    for params in ({"q": "a\x00b"}, {"after": "9" * 40}, {"before": "x"}, {"campaign": "-1"}):
        assert viewer_client.get(INBOX, params).status_code == 200
