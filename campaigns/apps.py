from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self):
        from subscribers.selectors import TIMELINE_SOURCES
        from subscribers.services import ERASE_HOOKS, EXPORT_SECTIONS

        from . import gdpr

        EXPORT_SECTIONS["deliveries"] = gdpr.deliveries_export
        if gdpr.deliveries_erase not in ERASE_HOOKS:
            ERASE_HOOKS.append(gdpr.deliveries_erase)
        if gdpr.deliveries_timeline not in TIMELINE_SOURCES:
            TIMELINE_SOURCES.append(gdpr.deliveries_timeline)
