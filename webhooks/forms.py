from django import forms

from .dispatch import url_problem
from .models import EVENT_TYPES, WebhookEndpoint


class EndpointForm(forms.ModelForm):
    url = forms.URLField(label="Endpoint URL", max_length=1000, assume_scheme="https")
    event_types = forms.MultipleChoiceField(
        choices=EVENT_TYPES,
        widget=forms.CheckboxSelectMultiple,
        help_text="Each event is sent as one signed POST (Standard Webhooks).",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "event_types", "include_machine", "enabled"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        problem = url_problem(url)
        if problem:
            raise forms.ValidationError(problem)
        return url
