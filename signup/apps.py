from django.apps import AppConfig


class SignupConfig(AppConfig):
    """Embeddable signup forms, double opt-in and lead magnets (the capture side)."""

    name = "signup"
    verbose_name = "Signup forms"

    def ready(self):
        from subscribers.services import gdpr_register

        from . import gdpr

        gdpr_register(
            export={"signups": gdpr.signups_export},
            erase=gdpr.signups_erase,
            timeline=gdpr.signups_timeline,
        )
