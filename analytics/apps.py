from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"
    verbose_name = "Analytics"

    def ready(self):
        from subscribers.segments import register_condition

        from . import webhooks  # noqa: F401  (connects the anymail tracking receiver)
        from .selectors import engagement_condition_q

        # Segment rules gain {"field": "engagement", ...}: human opens / clicks only.
        register_condition("engagement", engagement_condition_q)
