from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics"

    def ready(self):
        from subscribers.segments import register_condition
        from subscribers.selectors import TIMELINE_SOURCES
        from subscribers.services import ERASE_HOOKS, EXPORT_SECTIONS

        from . import gdpr, webhooks  # noqa: F401  (webhooks connects the anymail receiver)
        from .selectors import (
            ENGAGEMENT_BUILDER,
            ENGAGEMENT_NUMBERS,
            engagement_condition_q,
            engagement_number_q,
            last_engaged_q,
        )

        # Segment rules gain {"field": "engagement", ...} and the engagement numbers and date,
        # offered by the segment builder: human opens / clicks only.
        register_condition(
            "engagement", engagement_condition_q, builder=ENGAGEMENT_BUILDER["engagement"]
        )
        register_condition(
            "last_engaged", last_engaged_q, builder=ENGAGEMENT_BUILDER["last_engaged"]
        )
        for field in ENGAGEMENT_NUMBERS:
            register_condition(field, engagement_number_q, builder=ENGAGEMENT_BUILDER[field])

        EXPORT_SECTIONS["events"] = gdpr.events_export
        EXPORT_SECTIONS["engagement"] = gdpr.engagement_export
        if gdpr.events_erase not in ERASE_HOOKS:
            ERASE_HOOKS.append(gdpr.events_erase)
        if gdpr.events_timeline not in TIMELINE_SOURCES:
            TIMELINE_SOURCES.append(gdpr.events_timeline)
