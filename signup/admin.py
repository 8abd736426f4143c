from django.contrib import admin

from .models import FormView, LeadMagnet, Signup, SignupForm


@admin.register(SignupForm)
class SignupFormAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "language", "double_opt_in", "is_active"]
    search_fields = ["name", "public_id"]


@admin.register(LeadMagnet)
class LeadMagnetAdmin(admin.ModelAdmin):
    list_display = ["name", "downloads", "link_hours"]


@admin.register(Signup)
class SignupAdmin(admin.ModelAdmin):
    list_display = ["subscriber", "form", "steps_completed", "created_at", "confirmed_at"]
    list_filter = ["form"]
    raw_id_fields = ["subscriber"]


admin.site.register(FormView)
