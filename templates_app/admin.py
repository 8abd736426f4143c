from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from .models import Image, Layout, SentReply, Template, TemplateVersion
from .services import layout_validate


class LayoutForm(forms.ModelForm):
    class Meta:
        model = Layout
        fields = ["name", "html"]

    def clean_html(self):
        html = self.cleaned_data["html"]
        try:
            layout_validate(html=html)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["html"]) from exc
        return html


@admin.register(Layout)
class LayoutAdmin(admin.ModelAdmin):
    # Layouts are trusted HTML (not sanitized like bodies): only staff edit them, here.
    form = LayoutForm
    list_display = ["name", "updated_at"]


@admin.register(TemplateVersion)
class TemplateVersionAdmin(admin.ModelAdmin):
    list_display = ["template", "number", "subject", "created_at", "created_by"]
    list_select_related = ["template", "created_by"]
    readonly_fields = [f.name for f in TemplateVersion._meta.fields]


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "language", "current_version", "updated_at"]
    list_filter = ["kind", "language"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["original_name", "alt_text", "width", "height", "size", "created_at"]


@admin.register(SentReply)
class SentReplyAdmin(admin.ModelAdmin):
    list_display = ["subject", "to_email", "sent_at", "sent_by"]
    list_select_related = ["sent_by"]
    raw_id_fields = ["subscriber", "template", "version"]
