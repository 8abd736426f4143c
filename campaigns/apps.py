from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self):
        from subscribers.services import gdpr_register

        from . import gdpr

        gdpr_register(
            export={"deliveries": gdpr.deliveries_export},
            erase=gdpr.deliveries_erase,
            timeline=gdpr.deliveries_timeline,
        )
