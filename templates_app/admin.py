from django.contrib import admin

from .models import Layout, Template, TemplateVersion

admin.site.register(Layout)
admin.site.register(TemplateVersion)


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "language", "current_version", "updated_at"]
    list_filter = ["kind", "language"]
