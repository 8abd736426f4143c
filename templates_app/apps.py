from django.apps import AppConfig


class TemplatesAppConfig(AppConfig):
    name = "templates_app"
    verbose_name = "Templates"

    def ready(self):
        from subscribers.services import gdpr_register

        from . import gdpr

        gdpr_register(
            export={"sent_replies": gdpr.sent_replies_export},
            erase=gdpr.sent_replies_erase,
            timeline=gdpr.sent_replies_timeline,
        )
