from django import template

from analytics.models import ReputationAlert, SendingDomain

register = template.Library()


@register.filter
def pct(value, digits=1):
    """0.0123 -> '1.2 %'; None (no base to divide by) -> 'n/a'."""
    if value is None or value == "":
        return "n/a"
    return f"{float(value) * 100:.{int(digits)}f} %"


@register.filter
def choice_label(value, choices: str):
    """The label of a stored value: {{ t.dns|choice_label:"domain_status" }} shows
    "Not checked yet", not "unchecked". Unknown values are shown as they are."""
    table = {
        "domain_status": SendingDomain.Status,
        "level": ReputationAlert.Level,
    }[choices]
    try:
        return table(value).label
    except ValueError:
        return value
