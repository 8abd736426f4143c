from django.apps import AppConfig


class SignupConfig(AppConfig):
    """Embeddable signup forms, double opt-in and lead magnets (the capture side)."""

    name = "signup"
    verbose_name = "Signup forms"

    def ready(self):
        from subscribers.selectors import TIMELINE_SOURCES
        from subscribers.services import ERASE_HOOKS, EXPORT_SECTIONS

        from . import gdpr

        EXPORT_SECTIONS["signups"] = gdpr.signups_export
        if gdpr.signups_erase not in ERASE_HOOKS:
            ERASE_HOOKS.append(gdpr.signups_erase)
        if gdpr.signups_timeline not in TIMELINE_SOURCES:
            TIMELINE_SOURCES.append(gdpr.signups_timeline)
