import re
from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

from django import forms
from django.conf import settings
from django.core.validators import validate_email
from django.forms.fields import BaseTemporalField
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html, format_html_join
from django.utils.module_loading import import_string

from analytics.models import ReputationAlert
from subscribers.models import Segment, Topic
from templates_app.models import Template

from .models import SENDER_AND_TRACKING_FIELDS, Campaign, SendingConnection
from .scheduling import SkippedLocalTime, resolve_local_time
from .smtp_connect import normalise_fingerprint

TIMEZONES = sorted(available_timezones())
# Far enough on both sides that converting between zones never leaves datetime's range.
MIN_YEAR, MAX_YEAR = 2000, 9998
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


class CampaignForm(forms.ModelForm):
    """The wizard: 1 audience, 2 content, 3 settings (4, review and schedule, is the page)."""

    topics = forms.ModelMultipleChoiceField(
        queryset=Topic.objects.all(), required=False, widget=forms.CheckboxSelectMultiple
    )
    segment = forms.ModelChoiceField(queryset=Segment.objects.all(), required=False)
    template = forms.ModelChoiceField(
        queryset=Template.objects.filter(kind=Template.Kind.NEWSLETTER)
    )
    tags = forms.CharField(required=False, help_text="Comma-separated.")

    class Meta:
        model = Campaign
        fields = [
            "name",
            "topics",
            "segment",
            "template",
            "subject",
            "preheader",
            *SENDER_AND_TRACKING_FIELDS,
            "max_consecutive_failures",
            "unknown_settle_hours",
            "unknown_settle_action",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["tags"] = ", ".join(self.instance.tags)

    def clean_tags(self):
        return [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        if not cleaned.get("topics") and not cleaned.get("segment"):
            raise forms.ValidationError("Choose at least one topic or a segment as the audience.")
        return cleaned


class WallClockField(forms.DateTimeField):
    """A date and time as read on a clock in a zone chosen by another field (the form places
    it there). Django's DateTimeField would read it in the server's time zone instead, and
    refuse, in that zone's name, a time that is only ambiguous there."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, datetime):
            return value
        try:
            # What a datetime-local input sends ("2027-03-28T02:30"), seconds optional.
            result = parse_datetime(str(value).strip())
        except ValueError:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid") from None
        if result is None:
            result = BaseTemporalField.to_python(self, value)  # the input formats
        return result


class TimezoneInput(forms.TextInput):
    """A text box with the zones as a datalist: the browser filters the list as one types
    ("paris", "new_y"), with or without JavaScript."""

    list_id = "timezone-choices"

    def __init__(self, attrs=None):
        super().__init__({"list": self.list_id, "autocomplete": "off", **(attrs or {})})

    def render(self, name, value, attrs=None, renderer=None):
        options = format_html_join("", '<option value="{}"></option>', ((z,) for z in TIMEZONES))
        datalist = format_html('<datalist id="{}">{}</datalist>', self.list_id, options)
        return super().render(name, value, attrs, renderer) + datalist


class TimezoneField(forms.ChoiceField):
    default_error_messages = {
        "invalid_choice": "Choose a time zone from the list, such as Europe/Paris.",
    }
    _by_lower = {zone.lower(): zone for zone in TIMEZONES}

    def __init__(self, **kwargs):
        super().__init__(choices=[(z, z) for z in TIMEZONES], widget=TimezoneInput, **kwargs)

    def to_python(self, value):
        # What was typed, in any case and with spaces for underscores ("new york").
        value = super().to_python(value).strip()
        return self._by_lower.get(value.lower().replace(" ", "_"), value)


# The fields each kind of schedule uses. The others are hidden by static/js/schedule_form.js,
# and ignored here: a browser without JavaScript shows (and posts) every field.
KIND_FIELDS = {
    "send_at_local": (Campaign.ScheduleKind.ONCE,),
    "weekday": (Campaign.ScheduleKind.RECURRING,),
    "hour": (Campaign.ScheduleKind.RECURRING,),
    "only_new_since_last": (Campaign.ScheduleKind.RECURRING,),
}
EMPTY = {"send_at_local": None, "weekday": None, "hour": None, "only_new_since_last": False}


class ScheduleForm(forms.Form):
    kind = forms.ChoiceField(choices=Campaign.ScheduleKind.choices)
    send_at_local = WallClockField(
        required=False,
        label="Send at (local time)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Wall-clock time in the time zone below. A time the clocks skip (spring "
        "forward) is refused; one that happens twice (fall back) means the first.",
    )
    timezone = TimezoneField(
        initial=settings.TIME_ZONE,
        help_text="Type to search. The clock of the time above, of the weekly hour, and of the "
        "recipients who have no time zone of their own.",
    )
    weekday = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "—"), *enumerate(WEEKDAYS)],
    )
    hour = forms.IntegerField(required=False, min_value=0, max_value=23)
    only_new_since_last = forms.BooleanField(required=False)
    local_send_hour = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=23,
        help_text="Optional: deliver at this hour in each recipient's own time zone.",
    )
    override = forms.BooleanField(
        required=False, help_text="Admins: schedule despite blocking pre-flight findings."
    )

    def __init__(self, *args, browser_zone: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].widget.attrs["data-schedule-kind"] = ""
        for name, kinds in KIND_FIELDS.items():
            self.fields[name].widget.attrs["data-schedule-kinds"] = " ".join(kinds)
        if browser_zone:
            # Nothing chosen yet: the page's script offers the marketer's own zone (the
            # browser's) instead of the organisation's, when it is one of the list.
            self.fields["timezone"].widget.attrs["data-browser-zone"] = ""

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        kind = cleaned.get("kind")
        for name, kinds in KIND_FIELDS.items():
            if kind and kind not in kinds:
                # Not used by this kind: whatever the field holds (even something invalid,
                # left there while the marketer tried another kind) does not count.
                self.errors.pop(name, None)
                cleaned[name] = EMPTY[name]
        if kind == Campaign.ScheduleKind.ONCE and not cleaned.get("send_at_local"):
            if "send_at_local" not in self.errors:
                self.add_error("send_at_local", "Choose the date and time.")
        elif kind == Campaign.ScheduleKind.ONCE and cleaned.get("timezone"):
            self._place(cleaned)
        if kind == Campaign.ScheduleKind.RECURRING:
            if cleaned.get("weekday") is None:
                self.add_error("weekday", "Choose the weekday.")
            if cleaned.get("hour") is None:
                self.add_error("hour", "Choose the hour.")
        return cleaned

    def apply_to(self, campaign: Campaign) -> None:
        """Set the campaign's schedule from the cleaned form (not saved): the campaign page and
        the API's schedule endpoint both call this."""
        data = self.cleaned_data
        campaign.schedule_kind = data["kind"]
        campaign.schedule_timezone = data["timezone"]
        campaign.send_at_local = data["send_at_local"]
        campaign.recurring_weekday = data["weekday"]
        campaign.recurring_hour = data["hour"]
        campaign.only_new_since_last = data["only_new_since_last"]
        campaign.local_send_hour = data["local_send_hour"]

    def _place(self, cleaned) -> None:
        """Read the time in the chosen zone: ``send_at_local`` stays the wall-clock time,
        ``send_at`` is its instant and ``repeated`` tells a fall-back time taken the first."""
        zone = cleaned["timezone"]
        local = cleaned["send_at_local"]
        if local.tzinfo is not None:  # an offset typed by hand: the same instant, read there
            local = local.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        if not MIN_YEAR <= local.year <= MAX_YEAR:
            self.add_error("send_at_local", f"Choose a date between {MIN_YEAR} and {MAX_YEAR}.")
            return
        try:
            resolved = resolve_local_time(local, zone)
        except SkippedLocalTime as exc:
            self.add_error("send_at_local", str(exc))
            return
        cleaned["send_at_local"] = local
        cleaned["send_at"] = resolved.instant
        cleaned["repeated"] = resolved.repeated


class TestSendForm(forms.Form):
    addresses = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One address per line (saved as the seed list).",
    )

    def clean_addresses(self):
        addresses = [a.strip() for a in self.cleaned_data["addresses"].splitlines() if a.strip()]
        for address in addresses:
            try:
                validate_email(address)
            except forms.ValidationError as exc:
                raise forms.ValidationError(f"{address!r} is not an email address.") from exc
        if len(addresses) > 20:
            raise forms.ValidationError("At most 20 seed addresses.")
        return addresses


SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def _truthy(value) -> bool:
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


class ConnectionForm(forms.ModelForm):
    class Meta:
        model = SendingConnection
        fields = [
            "name",
            "backend",
            "options",
            "sending_domain",
            "test_mode",
            "rate_per_second",
            "domain_caps",
            "warmup_plan",
            "warmup_started_on",
        ]
        widgets = {"warmup_started_on": forms.DateInput(attrs={"type": "date"})}

    def clean_backend(self):
        path = self.cleaned_data["backend"]
        try:
            import_string(path)
        except ImportError as exc:
            raise forms.ValidationError(f"{path} cannot be imported: {exc}") from exc
        return path

    def clean(self):
        super().clean()
        cleaned = self.cleaned_data
        options = cleaned.get("options")
        if cleaned.get("backend") == SMTP_BACKEND and isinstance(options, dict):
            if _truthy(options.get("use_tls")) and _truthy(options.get("use_ssl")):
                self.add_error(
                    "options", "Choose one: use_tls (STARTTLS, port 587) or use_ssl (port 465)."
                )
            pin = normalise_fingerprint(str(options.get("tls_fingerprint") or ""))
            if pin and not re.fullmatch(r"[0-9a-f]{64}", pin):
                self.add_error(
                    "options",
                    "tls_fingerprint is the certificate's SHA-256 in hex (64 characters), e.g. "
                    "from: openssl x509 -noout -fingerprint -sha256",
                )
            port = options.get("port")
            if port is not None and not (str(port).isdigit() and 0 < int(port) < 65536):
                self.add_error("options", "port must be a number from 1 to 65535.")
        elif options is not None and not isinstance(options, dict):
            self.add_error("options", 'A JSON object, e.g. {"host": "smtp.example.com"}.')
        return cleaned

    def clean_warmup_plan(self):
        plan = self.cleaned_data["warmup_plan"] or []
        if not isinstance(plan, list) or not all(isinstance(n, int) and n > 0 for n in plan):
            raise forms.ValidationError("A list of positive daily caps, e.g. [500, 1000, 2000].")
        return plan

    def clean_domain_caps(self):
        caps = self.cleaned_data["domain_caps"] or {}
        if not isinstance(caps, dict) or not all(
            isinstance(v, int) and v > 0 for v in caps.values()
        ):
            raise forms.ValidationError('Per-minute caps by domain, e.g. {"gmail.com": 600}.')
        return {k.lower(): v for k, v in caps.items()}


class AlertAcknowledgeForm(forms.Form):
    """An admin's acknowledgement of the critical alerts shown on the campaign page (their
    ids come with the form: an alert opened since the page was shown is not acknowledged
    unseen)."""

    alert = forms.ModelMultipleChoiceField(
        queryset=ReputationAlert.objects.filter(
            resolved_at__isnull=True, level=ReputationAlert.Level.CRITICAL
        ),
        error_messages={
            "required": "No alert to acknowledge.",
            "invalid_choice": "That alert is no longer open: reload the page.",
            "invalid_pk_value": "That is not an alert.",
        },
    )
    note = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why sending may go on (recorded with your name), e.g. the list was cleaned.",
        error_messages={"required": "Write a note: why sending may go on despite the alert."},
    )
