from django.contrib import admin

from .models import (
    ConsentRecord,
    CustomField,
    ImportJob,
    Segment,
    Subscriber,
    Subscription,
    Suppression,
    Topic,
)


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["email", "first_name", "last_name", "status", "source", "created_at"]
    list_filter = ["status", "source"]
    search_fields = ["email"]
    show_full_result_count = False  # COUNT(*) on a million rows for every page is wasted work


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["subscriber", "topic", "status", "created_at"]
    raw_id_fields = ["subscriber"]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["email", "reason", "created_at"]
    list_filter = ["reason"]
    search_fields = ["email", "email_hash"]


@admin.register(CustomField)
class CustomFieldAdmin(admin.ModelAdmin):
    list_display = ["label", "key", "type"]


@admin.register(ConsentRecord)
class ConsentRecordAdmin(admin.ModelAdmin):
    """Append-only: readable here, never edited."""

    list_display = ["subscriber", "where", "version", "created_at"]
    list_filter = ["where"]
    raw_id_fields = ["subscriber"]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ["name", "updated_at"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "original_name", "status", "created", "updated", "rejected", "created_at"]
    list_filter = ["status"]
