import ipaddress

from django import forms

from .models import CampaignTracking, SendingDomain, SunsetPolicy


class CampaignTrackingForm(forms.ModelForm):
    class Meta:
        model = CampaignTracking
        fields = ["mode", "utm_source", "utm_medium", "utm_campaign"]
        labels = {
            "mode": "Tracking",
            "utm_source": "UTM source",
            "utm_medium": "UTM medium",
            "utm_campaign": "UTM campaign",
        }
        # Every field has a help line, so the four inputs stand on one line.
        help_texts = {
            "mode": "What is recorded per recipient.",
            "utm_source": "e.g. newsletter",
            "utm_medium": "e.g. email",
            "utm_campaign": "e.g. spring-sale",
        }


class SendingDomainForm(forms.ModelForm):
    class Meta:
        model = SendingDomain
        fields = ["domain", "spf_include", "dkim_selector", "sending_ips"]

    def clean_domain(self):
        domain = self.cleaned_data["domain"].strip().lower().rstrip(".")
        if "." not in domain or " " in domain or "@" in domain:
            raise forms.ValidationError("Enter a domain name, e.g. news.example.com.")
        return domain

    def clean_sending_ips(self):
        ips = [ip.strip() for ip in self.cleaned_data["sending_ips"].split(",") if ip.strip()]
        for ip in ips:
            try:
                ipaddress.ip_address(ip)
            except ValueError as exc:
                raise forms.ValidationError(f"{ip} is not an IP address.") from exc
        return ", ".join(ips)


class SunsetPolicyForm(forms.ModelForm):
    class Meta:
        model = SunsetPolicy
        fields = ["enabled", "inactive_days", "grace_days", "reengagement_campaign"]

    def clean_inactive_days(self):
        days = self.cleaned_data["inactive_days"]
        if days < 30:
            raise forms.ValidationError("At least 30 days: shorter windows sunset real readers.")
        return days
