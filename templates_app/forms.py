from typing import cast

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from .models import Layout, Template
from .services import template_validate


class TemplateForm(forms.ModelForm):
    language = forms.ChoiceField(choices=settings.LANGUAGES)
    tags_text = forms.CharField(
        label="Tags", required=False, help_text="Comma-separated, to find templates later."
    )

    class Meta:
        model = Template
        fields = ["name", "language", "subject", "preheader", "layout", "html_body", "text_body"]
        widgets = {
            "html_body": forms.Textarea(
                attrs={"rows": 18, "class": "font-monospace", "spellcheck": "false"}
            ),
            "text_body": forms.Textarea(attrs={"rows": 6, "class": "font-monospace"}),
        }
        labels = {"html_body": "HTML body", "text_body": "Text body (optional)"}

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        cast(forms.ModelChoiceField, self.fields["layout"]).queryset = Layout.objects.order_by(
            "name"
        )
        if kind == Template.Kind.CANNED_REPLY:
            del self.fields["layout"]
        if self.instance.pk:
            self.fields["tags_text"].initial = ", ".join(self.instance.tags or [])

    def clean(self):
        super().clean()
        data = self.cleaned_data
        try:
            template_validate(
                subject=data.get("subject") or "",
                preheader=data.get("preheader") or "",
                html_body=data.get("html_body") or "",
                text_body=data.get("text_body") or "",
            )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                for message in messages:
                    self.add_error(field, message)
        data["tags"] = [t.strip() for t in (data.get("tags_text") or "").split(",") if t.strip()]
        return data


class ImageUploadForm(forms.Form):
    file = forms.FileField(label="Image (JPEG, PNG, GIF or WebP)")
    alt_text = forms.CharField(
        max_length=300, help_text="What the image shows, for people who cannot see it."
    )


class ReplyStartForm(forms.Form):
    to_email = forms.EmailField(label="To", help_text="A subscriber's address or any address.")
    template = forms.ModelChoiceField(
        queryset=Template.objects.filter(kind=Template.Kind.CANNED_REPLY).order_by(
            "language", "name"
        ),
        label="Reply",
    )


def reply_fields_form(names: list[str], data=None) -> forms.Form:
    """A form with one required text field per ad-hoc merge tag of the reply."""
    form = forms.Form(data)
    for name in names:
        form.fields[name] = forms.CharField(
            label=name.replace("_", " ").capitalize(), required=True, max_length=500
        )
    return form
