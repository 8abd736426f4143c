from django.contrib import admin

from .models import ExitSurveyReason, ExitSurveyResponse, PreferenceCenterSettings

admin.site.register(PreferenceCenterSettings)


@admin.register(ExitSurveyReason)
class ExitSurveyReasonAdmin(admin.ModelAdmin):
    list_display = ["key", "label_en", "label_fr", "position", "active"]


@admin.register(ExitSurveyResponse)
class ExitSurveyResponseAdmin(admin.ModelAdmin):
    list_display = ["created_at", "campaign", "reasons", "language"]
    raw_id_fields = ["subscriber"]
