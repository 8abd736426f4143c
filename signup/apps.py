from django.apps import AppConfig


class SignupConfig(AppConfig):
    """Embeddable signup forms, double opt-in and lead magnets (the capture side)."""

    name = "signup"
    verbose_name = "Signup forms"
