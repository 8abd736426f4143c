from django.apps import AppConfig


class PreferencesConfig(AppConfig):
    """The public side for recipients: preference center, one-click unsubscribe, exit survey."""

    name = "preferences"
    verbose_name = "Preference center"

    def ready(self):
        from subscribers.selectors import TIMELINE_SOURCES
        from subscribers.services import ERASE_HOOKS, EXPORT_SECTIONS

        from . import (
            gdpr,
            inbound,  # noqa: F401 - connects the anymail inbound receiver
        )
        from .services import exit_survey_forget

        EXPORT_SECTIONS["exit_survey"] = gdpr.exit_survey_export
        if exit_survey_forget not in ERASE_HOOKS:
            ERASE_HOOKS.append(exit_survey_forget)
        if gdpr.exit_survey_timeline not in TIMELINE_SOURCES:
            TIMELINE_SOURCES.append(gdpr.exit_survey_timeline)
