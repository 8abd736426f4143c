"""Load demo data so a newcomer sees a populated dashboard, and print an admin login.

Idempotent: each app's ``demo.load`` adds its data only when it is missing. The admin's
password is reset and printed on every run (or taken from DEMO_ADMIN_PASSWORD).
"""

import importlib
import os
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from core.roles import Role, user_set_role

DEMO_APPS = ["subscribers", "templates_app", "signup", "campaigns", "analytics", "preferences"]


class Command(BaseCommand):
    help = "Create the demo admin login and demo data for every app."

    def handle(self, *args, **options):
        with transaction.atomic():
            username, password = self._admin()
            for app in DEMO_APPS:
                try:
                    module = importlib.import_module(f"{app}.demo")
                except ModuleNotFoundError as exc:
                    if exc.name != f"{app}.demo":
                        raise
                    continue
                module.load(stdout=self.stdout)
        line = "=" * 64
        self.stdout.write(self.style.SUCCESS(line))
        self.stdout.write(self.style.SUCCESS(f"  NoFailMail is at {settings.SITE_URL}/"))
        self.stdout.write(self.style.SUCCESS(f"  Log in as: {username}  password: {password}"))
        self.stdout.write(self.style.SUCCESS(line))

    def _admin(self) -> tuple[str, str]:
        User = get_user_model()
        username = "admin"
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(9)
        user, _ = User.objects.get_or_create(
            username=username, defaults={"email": "admin@example.com"}
        )
        user.is_staff = True
        user.is_superuser = True
        user.set_password(password)
        user.save()
        user_set_role(user=user, role=Role.ADMIN)
        for name, role in (("editor", Role.EDITOR), ("viewer", Role.VIEWER)):
            other, created = User.objects.get_or_create(username=name)
            if created:
                other.set_password(password)
                other.save()
                user_set_role(user=other, role=role)
        return username, password
