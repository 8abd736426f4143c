from django.apps import AppConfig


class PreferencesConfig(AppConfig):
    """The public side for recipients: preference center, one-click unsubscribe, exit survey."""

    name = "preferences"
    verbose_name = "Preference center"
