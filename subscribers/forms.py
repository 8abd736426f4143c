import json

from django import forms

from .models import CustomField, Segment, Subscriber, Topic
from .segments import SegmentRuleError, rules_q
from .services import attribute_coerce


class SubscriberForm(forms.Form):
    email = forms.CharField(max_length=254)
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    language = forms.CharField(max_length=8, initial="en")
    timezone = forms.CharField(max_length=64, required=False)
    topics = forms.ModelMultipleChoiceField(
        Topic.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, subscriber: Subscriber | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.custom_fields = list(CustomField.objects.all())
        if subscriber is not None:
            del self.fields["topics"]
        for field in self.custom_fields:
            name = f"attr_{field.key}"
            if field.type == CustomField.Type.BOOLEAN:
                self.fields[name] = forms.NullBooleanField(label=field.label, required=False)
            elif field.type == CustomField.Type.CHOICE:
                self.fields[name] = forms.ChoiceField(
                    label=field.label,
                    required=False,
                    choices=[("", "—"), *[(c, c) for c in field.choices]],
                )
            elif field.type == CustomField.Type.DATE:
                self.fields[name] = forms.DateField(
                    label=field.label,
                    required=False,
                    widget=forms.DateInput(attrs={"type": "date"}),
                )
            else:
                self.fields[name] = forms.CharField(label=field.label, required=False)
            if subscriber is not None:
                self.initial[name] = subscriber.attributes.get(field.key)

    def clean(self):
        super().clean()
        data = self.cleaned_data
        attributes = {}
        for field in self.custom_fields:
            raw = data.get(f"attr_{field.key}")
            try:
                value = attribute_coerce(field=field, raw=raw)
            except ValueError as exc:
                self.add_error(f"attr_{field.key}", str(exc))
                continue
            if value is not None:
                attributes[field.key] = value
        data["attributes"] = attributes
        return data


class TopicForm(forms.ModelForm):
    class Meta:
        model = Topic
        fields = ["name", "slug", "public_name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class CustomFieldForm(forms.ModelForm):
    choices_text = forms.CharField(
        label="Choices", required=False, help_text="For a choice field: one per line."
    )

    class Meta:
        model = CustomField
        fields = ["key", "label", "type"]

    def clean(self):
        super().clean()
        data = self.cleaned_data
        choices = [c.strip() for c in data.get("choices_text", "").splitlines() if c.strip()]
        if data.get("type") == CustomField.Type.CHOICE and not choices:
            self.add_error("choices_text", "A choice field needs at least one choice.")
        self.instance.choices = choices
        return data


class SegmentForm(forms.ModelForm):
    rules = forms.CharField(widget=forms.HiddenInput)

    class Meta:
        model = Segment
        fields = ["name", "description", "rules"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def clean_rules(self):
        try:
            rules = json.loads(self.cleaned_data["rules"])
        except ValueError:
            raise forms.ValidationError("The rules are not valid JSON.") from None
        try:
            rules_q(rules)
        except SegmentRuleError as exc:
            raise forms.ValidationError(str(exc)) from None
        return rules


class ImportUploadForm(forms.Form):
    file = forms.FileField(label="CSV file")


class ImportOptionsForm(forms.Form):
    topics = forms.ModelMultipleChoiceField(
        Topic.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Every imported subscriber is added to these topics.",
    )
    confirmed = forms.ChoiceField(
        choices=[
            ("no", "They must confirm by double opt-in (imported as unconfirmed)"),
            ("yes", "They already consented (imported as confirmed)"),
        ],
        widget=forms.RadioSelect,
        initial="no",
        label="Consent",
    )
    consent_note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="How and when they consented: kept as each subscriber's consent record.",
    )
    update_existing = forms.ChoiceField(
        choices=[("yes", "Update existing subscribers"), ("no", "Leave existing ones as they are")],
        widget=forms.RadioSelect,
        initial="yes",
        label="Existing subscribers",
    )

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("confirmed") == "yes" and not (data.get("consent_note") or "").strip():
            self.add_error(
                "consent_note", "Say how these people consented: it is kept as their record."
            )
        return data
