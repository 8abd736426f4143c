from django.http import HttpResponseNotAllowed


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
            from .views import method_not_allowed

            allowed = [m.strip() for m in response.get("Allow", "").split(",") if m.strip()]
            return method_not_allowed(request, allowed)
        return response
