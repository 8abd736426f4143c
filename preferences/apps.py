from django.apps import AppConfig


class PreferencesConfig(AppConfig):
    """The public side for recipients: preference center, one-click unsubscribe, exit survey."""

    name = "preferences"
    verbose_name = "Preference center"

    def ready(self):
        from subscribers.services import ERASE_HOOKS

        from . import inbound  # noqa: F401 - connects the anymail inbound receiver
        from .services import exit_survey_forget

        if exit_survey_forget not in ERASE_HOOKS:
            ERASE_HOOKS.append(exit_survey_forget)
