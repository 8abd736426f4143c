from django import template

register = template.Library()


@register.filter
def pct(value, digits=1):
    """0.0123 -> '1.2 %'; None (no base to divide by) -> 'n/a'."""
    if value is None or value == "":
        return "n/a"
    return f"{float(value) * 100:.{int(digits)}f} %"
