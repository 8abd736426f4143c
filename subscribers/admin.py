from django.contrib import admin

from .models import Subscriber, Subscription, Suppression, Topic


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
