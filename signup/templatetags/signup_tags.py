from django import template

register = template.Library()


@register.simple_tag
def value_of(values, name):
    """The value a visitor typed (re-shown after an error)."""
    if not values:
        return ""
    return values.get(name, "")


@register.simple_tag
def list_of(values, name):
    if not values:
        return []
    return values.getlist(name) if hasattr(values, "getlist") else list(values.get(name) or [])


@register.filter
def get_item(mapping, key):
    return (mapping or {}).get(key)
