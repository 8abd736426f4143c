from django.apps import AppConfig


class PreferencesConfig(AppConfig):
    """The public side for recipients: preference center, one-click unsubscribe, exit survey."""

    name = "preferences"
    verbose_name = "Preference center"

    def ready(self):
        from . import inbound  # noqa: F401 - connects the anymail inbound receiver
