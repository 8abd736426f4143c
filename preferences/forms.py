from typing import Any, cast

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from subscribers.models import Topic

from .models import ExitSurveyReason, PreferenceCenterSettings
from .services import FREQUENCY_CHOICES, PAUSE_MONTHS


class TopicsForm(forms.Form):
    topics = forms.ModelMultipleChoiceField(
        queryset=Topic.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )


class FrequencyForm(forms.Form):
    per_month = forms.TypedChoiceField(
        coerce=int, empty_value=None, required=False, widget=forms.RadioSelect
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Labels are built per request, in the subscriber's language (not at import time).
        cast(forms.ChoiceField, self.fields["per_month"]).choices = [("", _("Every campaign"))] + [
            (n, _("At most %(n)s a month") % {"n": n}) for n in FREQUENCY_CHOICES
        ]


class PauseForm(forms.Form):
    months = forms.TypedChoiceField(choices=[(m, m) for m in PAUSE_MONTHS], coerce=int)


class ProfileForm(forms.Form):
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    language = forms.ChoiceField(label=_("Language"), choices=settings.LANGUAGES)

    def __init__(self, *args, editable_fields=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.attribute_keys = []
        for field in editable_fields:
            self.fields[f"attr_{field.key}"] = attribute_form_field(field)
            self.attribute_keys.append(field.key)
        for field in self.fields.values():
            if isinstance(field.widget, forms.CheckboxInput):
                field.widget.attrs.setdefault("class", "form-check-input")
            elif isinstance(field.widget, forms.Select):
                field.widget.attrs.setdefault("class", "form-select")
            else:
                field.widget.attrs.setdefault("class", "form-control")

    def attributes(self) -> dict:
        return {key: self.cleaned_data.get(f"attr_{key}") for key in self.attribute_keys}


class KnownChoicesField(forms.MultipleChoiceField):
    """Keeps the ticked choices it knows and drops the others, instead of refusing the whole
    answer: a reason the marketer removed while the page was open, or a forged one, must not
    cost the recipient the reasons they did give."""

    def to_python(self, value):
        # Set from a list in the form's __init__ (the stubs allow lazier kinds of choices).
        known = {str(key) for key, _label in cast(list[tuple[Any, str]], self.choices)}
        return [item for item in super().to_python(value) if item in known]


class ExitSurveyForm(forms.Form):
    reasons = KnownChoicesField(required=False, widget=forms.CheckboxSelectMultiple)
    other_text = forms.CharField(
        label=_("Anything else you would like to tell us?"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def __init__(self, *args, language="en", **kwargs):
        super().__init__(*args, **kwargs)
        reasons = ExitSurveyReason.objects.filter(active=True)
        cast(forms.ChoiceField, self.fields["reasons"]).choices = [
            (r.key, r.label(language)) for r in reasons
        ]
        self.fields["reasons"].label = _("Why are you leaving? (optional)")


class ReasonForm(forms.ModelForm):
    class Meta:
        model = ExitSurveyReason
        fields = ["key", "label_en", "label_fr", "wants_text", "position", "active"]


def attribute_form_field(custom_field) -> forms.Field:
    """A form field for a custom attribute, typed like its definition."""
    kind = custom_field.type
    common = {"label": custom_field.label, "required": False}
    if kind == "number":
        return forms.DecimalField(**common)
    if kind == "date":
        return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), **common)
    if kind == "boolean":
        return forms.BooleanField(**common)
    if kind == "choice":
        return forms.ChoiceField(
            choices=[("", "—"), *[(c, c) for c in custom_field.choices]], **common
        )
    return forms.CharField(max_length=255, **common)


class PreferenceCenterSettingsForm(forms.ModelForm):
    class Meta:
        model = PreferenceCenterSettings
        fields = ["send_goodbye_email", "editable_fields"]
        widgets = {"editable_fields": forms.CheckboxSelectMultiple}
