from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics"

    def ready(self):
        from subscribers.segments import register_condition
        from subscribers.services import gdpr_register

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

        gdpr_register(
            export={"events": gdpr.events_export, "engagement": gdpr.engagement_export},
            erase=gdpr.events_erase,
            timeline=gdpr.events_timeline,
        )
