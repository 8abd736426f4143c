"""API keys, the write log and the idempotency records of the REST API (/api/v1/)."""

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """A bearer token for the API. Only its SHA-256 is kept: the token is shown once."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"
        SEND = "send", "Send (transactional messages)"
        ADMIN = "admin", "Admin (everything)"

    name = models.CharField(max_length=100)
    # The first characters of the token (``nfm_`` + 8), shown in lists so a key can be told apart.
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    # A list of Scope values.
    scopes = models.JSONField(default=list)
    # Empty: any source address. Otherwise CIDR networks ("203.0.113.0/24", "2001:db8::/32").
    allowed_networks = models.JSONField(default=list, blank=True)
    rate_per_minute = models.PositiveIntegerField(default=1200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ApiWriteLog(models.Model):
    """One write made through the API, with the key that made it."""

    # No index of its own: api_write_key (key, -id) starts with it, and every API write would
    # update both.
    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="writes", db_index=False)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    status = models.PositiveSmallIntegerField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["key", "-id"], name="api_write_key")]

    def __str__(self):
        return f"{self.method} {self.path} {self.status} by key {self.key_id}"


class IdempotencyRecord(models.Model):
    """A POST made with an ``Idempotency-Key``: what was asked (hash) and what was answered.

    ``status`` is 0 while the first request runs (a concurrent twin is refused with 409)."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    idempotency_key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField(default=0)
    response_body = models.BinaryField(default=bytes)
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["key", "idempotency_key"], name="api_idempotency_unique"
            )
        ]

    def __str__(self):
        return f"{self.idempotency_key} ({self.status or 'running'})"
