import secrets

from django import forms

from .keys import KeyError_, networks_parse
from .models import ApiKey


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it: “shop backend”, “CRM sync”.")
    scopes = forms.MultipleChoiceField(
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.Scope.READ],
        help_text="Write includes read; admin includes everything.",
    )
    allowed_networks = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Allowed source addresses",
        help_text="Optional: IP addresses or networks (CIDR), one per line. Empty: any.",
    )
    rate_per_minute = forms.IntegerField(
        min_value=1, max_value=1_000_000, initial=1200, label="Requests per minute"
    )

    # A fresh value in each form the page renders: the same form sent twice (a reload of the
    # page that showed the token re-sends its POST) makes one key, not two.
    once = forms.CharField(
        required=False, max_length=64, widget=forms.HiddenInput, initial=secrets.token_urlsafe
    )

    def clean_allowed_networks(self):
        try:
            return networks_parse(self.cleaned_data["allowed_networks"])
        except KeyError_ as exc:
            raise forms.ValidationError(str(exc)) from None
