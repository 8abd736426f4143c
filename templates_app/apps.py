from django.apps import AppConfig


class TemplatesAppConfig(AppConfig):
    name = "templates_app"
    verbose_name = "Templates"

    def ready(self):
        from subscribers.selectors import TIMELINE_SOURCES
        from subscribers.services import ERASE_HOOKS, EXPORT_SECTIONS

        from . import gdpr

        EXPORT_SECTIONS["sent_replies"] = gdpr.sent_replies_export
        if gdpr.sent_replies_erase not in ERASE_HOOKS:
            ERASE_HOOKS.append(gdpr.sent_replies_erase)
        if gdpr.sent_replies_timeline not in TIMELINE_SOURCES:
            TIMELINE_SOURCES.append(gdpr.sent_replies_timeline)
