"""anymail's webhook URLs, each tracking view behind ``webhooks.TrackingGuard``, each inbound
one behind ``webhooks.ConfigurationGuard``.

The same paths and names as ``anymail.urls`` (namespace "anymail"), built from it, so an ESP
anymail adds is routed, and guarded, with no change here.
"""

from typing import Any

from anymail import urls as anymail_urls
from anymail.signals import tracking
from anymail.webhooks.mandrill import MandrillCombinedWebhookView
from django.urls import URLPattern

from .webhooks import ConfigurationGuard, TrackingGuard


def _guarded(pattern):
    view_class = getattr(getattr(pattern, "callback", None), "view_class", None)
    if view_class is None:
        return pattern
    combined = issubclass(view_class, MandrillCombinedWebhookView)
    if combined or getattr(view_class, "signal", None) is tracking:
        guard, attributes = TrackingGuard, {"limit_body": not combined}
    else:  # inbound mail (the mailto: unsubscribe): only its configuration is guarded
        guard, attributes = ConfigurationGuard, {}
    guarded: Any = type(
        view_class.__name__, (guard, view_class), {"__module__": __name__, **attributes}
    )
    return URLPattern(
        pattern.pattern,
        guarded.as_view(**pattern.callback.view_initkwargs),
        pattern.default_args,
        pattern.name,
    )


app_name = "anymail"
urlpatterns = [_guarded(p) for p in anymail_urls.urlpatterns]
