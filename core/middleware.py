"""Request hygiene shared by every page."""

from django.http import HttpResponseBadRequest, HttpResponseNotAllowed, QueryDict

from .views import method_not_allowed

NUL = "\x00"
# ESP webhooks verify signatures over the body as sent; anymail reads it itself.
_RAW_BODY_PREFIXES = ("/anymail/",)
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _without_nul(data: QueryDict) -> QueryDict:
    clean = QueryDict(mutable=True, encoding=data.encoding)
    for key, values in data.lists():
        clean.setlist(key.replace(NUL, ""), [v.replace(NUL, "") for v in values])
    clean._mutable = False
    return clean


def _has_nul(data: QueryDict) -> bool:
    return any(NUL in key or any(NUL in v for v in values) for key, values in data.lists())


class NulByteMiddleware:
    """Drop NUL characters from query strings and form posts.

    PostgreSQL text cannot hold NUL: a search box or filter that passed "%00" through to a
    query answered 500. No one types a NUL on purpose, so it is removed before any view sees
    it (the search for "ann%00" is the search for "ann"). A NUL in the path is refused (400).
    Forms reject NUL on their own; this covers the views that read GET/POST values directly.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if NUL in request.path_info:
            return HttpResponseBadRequest("A NUL character is not allowed in a URL.")
        if "%00" in request.META.get("QUERY_STRING", "") and _has_nul(request.GET):
            request.GET = _without_nul(request.GET)
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        # After the CSRF check (which reads the form anyway), before the view.
        if (
            request.method == "POST"
            and request.content_type in _FORM_TYPES
            and not request.path_info.startswith(_RAW_BODY_PREFIXES)
            and _has_nul(request.POST)
        ):
            request.POST = _without_nul(request.POST)
        return None


class FriendlyMethodNotAllowed:
    """Django answers a POST-only address opened with GET (a reloaded or bookmarked form
    target) with a blank 405. A person gets a page saying what to do instead, still a 405;
    machines (htmx, webhooks posting the wrong way) keep the bare answer."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            isinstance(response, HttpResponseNotAllowed)
            and request.method == "GET"
            and not response.content
            and "HX-Request" not in request.headers
        ):
            allowed = [m.strip() for m in response.get("Allow", "").split(",") if m.strip()]
            return method_not_allowed(request, allowed)
        return response
