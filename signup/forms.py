import json
from typing import cast
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from templates_app.models import Template

from .models import LeadMagnet, SignupForm
from .schema import THEME_DEFAULTS, default_steps, steps_clean, theme_clean


def _template_label(template: Template) -> str:
    return f"{template.name} · {template.language}"


class SignupFormForm(forms.ModelForm):
    """The builder: settings as fields, the steps as one JSON document edited by builder.js."""

    steps_json = forms.CharField(
        label="Steps and fields",
        widget=forms.Textarea(attrs={"rows": 8, "class": "font-monospace", "id": "id_steps_json"}),
        help_text="Edited with the builder above (JSON when JavaScript is off).",
    )
    primary_color = forms.CharField(
        label="Button colour", widget=forms.TextInput(attrs={"type": "color"})
    )
    background_color = forms.CharField(
        label="Background", widget=forms.TextInput(attrs={"type": "color"})
    )
    text_color = forms.CharField(
        label="Text colour", widget=forms.TextInput(attrs={"type": "color"})
    )
    font_family = forms.CharField(label="Font", max_length=120)
    button_text = forms.CharField(
        label="Button text", max_length=60, required=False, help_text="Empty: “Subscribe”."
    )
    border_radius = forms.IntegerField(label="Corner radius (px)", min_value=0, max_value=40)
    redirect_url = forms.URLField(
        label="Redirect to", max_length=500, required=False, assume_scheme="https"
    )

    class Meta:
        model = SignupForm
        fields = [
            "name",
            "language",
            "is_active",
            "double_opt_in",
            "topics",
            "consent_text",
            "consent_version",
            "success_action",
            "success_message",
            "redirect_url",
            "lead_magnet",
            "allowed_origins",
            "min_fill_seconds",
            "proof_of_work",
            "reject_disposable",
            "check_dns",
            "confirmation_templates",
            "welcome_templates",
        ]
        widgets = {
            "topics": forms.CheckboxSelectMultiple,
            "consent_text": forms.Textarea(attrs={"rows": 2}),
            "success_message": forms.Textarea(attrs={"rows": 2}),
            "allowed_origins": forms.Textarea(
                attrs={"rows": 3, "placeholder": "https://www.example.com"}
            ),
            "confirmation_templates": forms.CheckboxSelectMultiple,
            "welcome_templates": forms.CheckboxSelectMultiple,
        }
        labels = {
            "min_fill_seconds": "Minimum fill time (seconds)",
            "check_dns": "Check the domain's DNS",
            "proof_of_work": "Proof-of-work challenge",
            "reject_disposable": "Reject disposable addresses",
            "is_active": "Active (accepts signups)",
        }
        help_texts = {
            "double_opt_in": "Send a confirmation link before the address counts as subscribed.",
            "allowed_origins": "Sites that may show this form, one origin per line "
            "(https://www.example.com), or * for any site. Empty: the hosted page only.",
            "min_fill_seconds": "Faster step-1 submissions are refused (bots fill forms at once).",
            "proof_of_work": "The visitor's browser solves a small puzzle before step 1 is sent.",
            "reject_disposable": "Refuse throwaway addresses (mailinator.com and the like).",
            "check_dns": "Look up the domain's mail servers (slower; off by default).",
            "confirmation_templates": "Canned replies, one per language, with "
            "{{ confirm_url }}. None: the built-in text.",
            "welcome_templates": "Canned replies sent after confirmation, with {{ download_url }} "
            "for the lead "
            "magnet. None: the built-in text (sent when there is a lead magnet).",
            "consent_version": "Change it whenever the consent text changes.",
            "success_message": "Shown when the form is sent. With double opt-in the address is "
            "not confirmed yet: say so (“Check your inbox to confirm”). Empty: the built-in text.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Signup emails are canned replies (they carry {{ confirm_url }} / {{ download_url }},
        # which a newsletter's linter refuses): newsletters are not offered here.
        templates = Template.objects.filter(kind=Template.Kind.CANNED_REPLY).order_by("name")
        for name in ("confirmation_templates", "welcome_templates"):
            field = cast(forms.ModelMultipleChoiceField, self.fields[name])
            field.queryset = templates
            # A label per choice without a field subclass: the stubs see a method replaced.
            field.label_from_instance = _template_label  # type: ignore[assignment]
        instance = self.instance
        theme = {**THEME_DEFAULTS, **(instance.theme or {})}
        for key in THEME_DEFAULTS:
            self.fields[key].initial = theme[key]

        self.fields["steps_json"].initial = json.dumps(
            instance.steps if instance.pk and instance.steps else default_steps(), indent=1
        )

    def clean_steps_json(self):
        try:
            steps = json.loads(self.cleaned_data["steps_json"])
        except json.JSONDecodeError as exc:
            raise ValidationError(f"The steps are not valid JSON: {exc}") from None
        return steps_clean(steps)

    def clean_allowed_origins(self):
        lines = [line.strip() for line in self.cleaned_data["allowed_origins"].splitlines()]
        bad = []
        for line in filter(None, lines):
            if line == "*":
                continue
            parts = urlsplit(line)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
                bad.append(line)
        if bad:
            raise ValidationError(
                f"Not an origin: {', '.join(bad)}. Use scheme and host only, "
                "like https://www.example.com."
            )
        return "\n".join(line.rstrip("/") for line in lines if line)

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("success_action") == SignupForm.SuccessAction.REDIRECT and not data.get(
            "redirect_url"
        ):
            self.add_error("redirect_url", "Give the page to redirect to.")
        theme = {key: data.get(key) for key in THEME_DEFAULTS if key in data}
        if len(theme) == len(THEME_DEFAULTS):
            try:
                data["theme"] = theme_clean(theme)
            except ValidationError as exc:
                for key, messages in exc.message_dict.items():
                    self.add_error(key, messages)
        return data

    def save(self, commit=True):
        self.instance.steps = self.cleaned_data["steps_json"]
        self.instance.theme = self.cleaned_data["theme"]
        return super().save(commit=commit)


class LeadMagnetForm(forms.ModelForm):
    url = forms.URLField(
        label="URL",
        max_length=500,
        required=False,
        assume_scheme="https",
        help_text="Where the file lives, if it is not uploaded here.",
    )

    class Meta:
        model = LeadMagnet
        fields = ["name", "file", "url", "link_hours"]
        help_texts = {
            "file": "A PDF, e-book, checklist… (or give a URL instead).",
            "url": "Where the file lives, if it is not uploaded here.",
        }

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        limit = settings.SIGNUP_LEAD_MAGNET_MAX_MB * 1024 * 1024
        if upload and getattr(upload, "size", 0) > limit:
            raise ValidationError(
                f"The file is larger than {settings.SIGNUP_LEAD_MAGNET_MAX_MB} MB."
            )
        return upload

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if not data.get("file") and not data.get("url"):
            raise ValidationError("Upload a file or give its URL.")
        return data
