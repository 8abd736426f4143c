from django.apps import AppConfig


class PreferencesConfig(AppConfig):
    """The public side for recipients: preference center, one-click unsubscribe, exit survey."""

    name = "preferences"
    verbose_name = "Preference center"

    def ready(self):
        from subscribers.services import gdpr_register

        from . import (
            gdpr,
            inbound,  # noqa: F401 - connects the anymail inbound receiver
        )
        from .services import exit_survey_forget

        gdpr_register(
            export={"exit_survey": gdpr.exit_survey_export},
            erase=exit_survey_forget,
            timeline=gdpr.exit_survey_timeline,
        )
