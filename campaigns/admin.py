from django.contrib import admin

from .models import Campaign, Delivery, SandboxMessage, SendingConnection


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "schedule_kind", "next_run_at", "total", "created_at"]
    list_filter = ["status", "schedule_kind"]
    search_fields = ["name"]
    raw_id_fields = ["parent", "template_version"]


@admin.register(SendingConnection)
class SendingConnectionAdmin(admin.ModelAdmin):
    list_display = ["name", "backend", "test_mode", "rate_per_second"]


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "email", "status", "sent_at", "attempts"]
    list_filter = ["status"]
    search_fields = ["email", "message_id"]
    raw_id_fields = ["campaign", "subscriber"]
    show_full_result_count = False  # the ledger is large: no COUNT(*) per page


@admin.register(SandboxMessage)
class SandboxMessageAdmin(admin.ModelAdmin):
    list_display = ["to", "subject", "campaign", "created_at"]
    raw_id_fields = ["campaign", "delivery"]
