"""System checks of our own settings (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def site_url_https(app_configs, **kwargs):
    """SITE_URL builds every link recipients get (unsubscribe, preferences, tracking) and the
    embed snippets: over http they travel in clear text and the signed tokens with them."""
    if settings.DEBUG or settings.SITE_URL.startswith("https://"):
        return []
    return [
        Warning(
            f"SITE_URL={settings.SITE_URL!r} is not https: recipient links (unsubscribe, "
            "preferences, tracking) and signup embeds would travel in clear text.",
            hint="Serve the app over TLS and set SITE_URL=https://your.host.",
            id="core.W001",
        )
    ]
