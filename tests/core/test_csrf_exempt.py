"""CSRF protection is the default for every view: only the few that must take a POST from
outside a page we served are exempt, each for a reason written here. A new csrf_exempt view
fails this test until it is added, with its reason (issue 13, item 8)."""

from django.urls import URLPattern, URLResolver, get_resolver

# view name -> why it may skip Django's CSRF check (its own protection instead).
ALLOWED = {
    # RFC 8058 one-click: the mailbox provider POSTs with no cookie and no token; the signed
    # recipient token in the URL is the protection.
    "preferences:unsubscribe": "RFC 8058 one-click unsubscribe (signed token)",
    # Embedded forms post from third-party sites (CORS by the form's allowed origins, the
    # signed form token and the bot protection of signup.protection).
    "signup:submit": "embedded signup form on other sites",
    "signup:config": "embedded signup form on other sites (GET/OPTIONS only)",
    # Answers 404 to any unknown /api/ address, whatever the method; changes nothing.
    "api_not_found": "the REST API's 404 for unknown addresses",
}
# ESPs call these; anymail authenticates them (WEBHOOK_SECRET basic auth, the ESP's signature).
ALLOWED_NAMESPACES = {
    "anymail": "ESP webhooks authenticated by anymail",
    # The REST API authenticates every call by a bearer key in the Authorization header, never
    # by a cookie: a forged cross-site request carries no key (api.auth).
    "api-v1": "REST API, bearer API keys only",
}


def _views(patterns, namespace=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = entry.namespace or ""
            yield from _views(
                entry.url_patterns, f"{namespace}:{inner}".strip(":") if inner else namespace
            )
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace else (entry.name or "")
            yield name, str(entry.pattern), entry.callback


def _exempt() -> dict[str, str]:
    return {
        name or route: route
        for name, route, callback in _views(get_resolver().url_patterns)
        if getattr(callback, "csrf_exempt", False)
    }


def test_only_the_named_views_are_csrf_exempt():
    unexpected = {
        name: route
        for name, route in _exempt().items()
        if name not in ALLOWED and name.split(":")[0] not in ALLOWED_NAMESPACES
    }
    assert unexpected == {}, (
        "CSRF-exempt views outside the allow-list (add a reason to ALLOWED if they must be): "
        f"{unexpected}"
    )


def test_the_walk_sees_the_exempt_views_it_allows():
    # Guards the guard: a walk that found nothing would pass the test above vacuously.
    found = _exempt()
    assert set(ALLOWED) <= set(found)
    assert any(name.startswith("anymail:") for name in found)
    assert "analytics:campaign" not in found and "preferences:center" not in found
