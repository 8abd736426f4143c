"""No query string and no path, however malformed, makes a page answer 500: every page reachable
without an argument in its path is opened by an admin with junk in the parameters the pages
read (paging, search, filters, sorting, dates, ids), and every page with arguments is opened
with ids that do not exist and tokens that are not tokens."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

# Three requests a page: the first two's junk in every parameter the pages read, the third the
# paging extremes (each alone, so one parameter's 404 cannot hide another's 500).
JUNK = [
    {
        "page": "abc",
        "q": "\x00",
        "status": "nope",
        "topic": "x",
        "segment": "y",
        "attr": "z",
        "attr_value": "1",
        "sort": "-nope",
        "order": "sideways",
        "after": "abc",
        "cursor": "abc",
        "since": "2026-13-45",
        "days": "many",
        "kind": "nope",
        "email": "@@",
    },
    {
        "page": "-1",
        "q": "%" * 300,
        "before": "abc",
        "until": "yesterday",
        "date": "0",
        "version": "abc",
        "campaign": "abc",
        "id": "x",
    },
    {"page": "99999999999999999999"},
]


def _plain_paths(patterns, prefix=""):
    """The dashboard's URL paths that take no argument (no converter in the path)."""
    for pattern in patterns:
        route = str(pattern.pattern)
        if "<" in route or route.startswith("^"):
            continue
        if isinstance(pattern, URLResolver):
            yield from _plain_paths(pattern.url_patterns, prefix + route)
        elif isinstance(pattern, URLPattern):
            yield "/" + prefix + route


PATHS = sorted(
    {
        path
        for path in _plain_paths(get_resolver().url_patterns)
        if not path.startswith(("/api/", "/admin/", "/static/", "/media/"))
    }
)


@pytest.mark.parametrize("path", PATHS)
def test_junk_in_the_query_string_is_never_a_server_error(admin_client, path):
    for params in JUNK:
        response = admin_client.get(path, params)
        assert response.status_code < 500, (path, params, response.status_code)


def _argument_paths(patterns, prefix=""):
    """Every route with arguments, each filled with what no object has: an id no row has, a
    word that is no slug, token or uuid of ours."""
    for pattern in patterns:
        route = str(pattern.pattern)
        if route.startswith("^"):
            continue
        if isinstance(pattern, URLResolver):
            yield from _argument_paths(pattern.url_patterns, prefix + route)
        elif isinstance(pattern, URLPattern) and "<" in prefix + route:
            filled = re.sub(r"<int:[^>]+>", "987654321", prefix + route)
            filled = re.sub(r"<uuid:[^>]+>", "00000000-0000-0000-0000-000000000000", filled)
            filled = re.sub(r"<path:[^>]+>", "no/such/thing", filled)
            yield "/" + re.sub(r"<(?:str:|slug:)?[^>]+>", "no-such-thing", filled)


ARGUMENT_PATHS = sorted(
    {
        path
        for path in _argument_paths(get_resolver().url_patterns)
        if not path.startswith(("/admin/", "/static/", "/media/"))
    }
)


@pytest.mark.parametrize("path", ARGUMENT_PATHS)
def test_an_id_or_token_that_is_nobodys_is_never_a_server_error(admin_client, path):
    for method in (admin_client.get, admin_client.post):
        response = method(path)
        assert response.status_code < 500, (path, method.__name__, response.status_code)
