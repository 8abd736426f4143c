# ruff: noqa: RUF001 - French typography uses the typographic apostrophe on purpose
"""The shape of a form (steps of fields), its public description and the validation of a step.

``steps_clean`` checks what the builder saves; ``form_layout`` resolves it (custom field types,
topic names, labels in the form's language) into what the hosted page, the iframe and the embed
script render; ``step_validate`` checks what a visitor submitted for one step.
"""

import re
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from subscribers.models import CustomField
from subscribers.services import attribute_coerce

KINDS = ("email", "first_name", "last_name", "attribute", "topics", "consent", "hidden")
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign")
_KEY_RE = re.compile(r"^[a-z0-9_-]{1,50}$")

# Labels and messages in the form's language (the visitor's side: never the dashboard's).
TEXTS = {
    "en": {
        "email": "Email address",
        "first_name": "First name",
        "last_name": "Last name",
        "topics": "What would you like to receive?",
        "consent": "I agree to receive these emails.",
        "button": "Subscribe",
        "next": "Next",
        "required": "This field is required.",
        "invalid_email": "Enter a valid email address.",
        "disposable": "Please use a permanent email address.",
        "not_number": "Enter a number.",
        "not_date": "Enter a date (YYYY-MM-DD).",
        "not_choice": "Choose one of the options.",
        "too_long": "This is too long.",
        "too_fast": "That was quick! Please try again in a few seconds.",
        "expired": "This form has expired. Please reload the page and try again.",
        "rate_limited": "Too many attempts. Please try again later.",
        "pow": "The security check failed. Please try again.",
        "success": "Thanks! Check your inbox to confirm your subscription.",
        "success_no_doi": "Thanks, you are subscribed!",
        "step": "Step {n} of {total}",
        "confirm_title": "Confirm your subscription",
        "confirm_text": "Click the button below to confirm that you want to receive our emails.",
        "confirm_button": "Yes, subscribe me",
        "confirmed_title": "You are subscribed",
        "confirmed_text": "Thank you for confirming.",
        "download": "Download",
        "bad_link": "This link is invalid or has expired.",
        "checking": "Checking…",
        "network": "Network error, please try again.",
    },
    "fr": {
        "email": "Adresse e-mail",
        "first_name": "Prénom",
        "last_name": "Nom",
        "topics": "Que souhaitez-vous recevoir ?",
        "consent": "J’accepte de recevoir ces e-mails.",
        "button": "S’inscrire",
        "next": "Suivant",
        "required": "Ce champ est obligatoire.",
        "invalid_email": "Saisissez une adresse e-mail valide.",
        "disposable": "Merci d’utiliser une adresse e-mail permanente.",
        "not_number": "Saisissez un nombre.",
        "not_date": "Saisissez une date (AAAA-MM-JJ).",
        "not_choice": "Choisissez l’une des options.",
        "too_long": "C’est trop long.",
        "too_fast": "C’était rapide ! Réessayez dans quelques secondes.",
        "expired": "Ce formulaire a expiré. Rechargez la page et réessayez.",
        "rate_limited": "Trop de tentatives. Réessayez plus tard.",
        "pow": "La vérification de sécurité a échoué. Réessayez.",
        "success": "Merci ! Vérifiez votre boîte de réception pour confirmer votre inscription.",
        "success_no_doi": "Merci, vous êtes inscrit !",
        "step": "Étape {n} sur {total}",
        "confirm_title": "Confirmez votre inscription",
        "confirm_text": "Cliquez sur le bouton ci-dessous pour confirmer que vous souhaitez "
        "recevoir nos e-mails.",
        "confirm_button": "Oui, je m’inscris",
        "confirmed_title": "Vous êtes inscrit",
        "confirmed_text": "Merci d’avoir confirmé.",
        "download": "Télécharger",
        "bad_link": "Ce lien est invalide ou a expiré.",
        "checking": "Vérification…",
        "network": "Erreur réseau, merci de réessayer.",
    },
}

THEME_DEFAULTS = {
    "primary_color": "#0d6efd",
    "background_color": "#ffffff",
    "text_color": "#212529",
    "font_family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    "button_text": "",
    "border_radius": 6,
}
_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$")
_FONT_RE = re.compile(r"^[\w\s,'\"-]{1,120}$")


def texts(language: str) -> dict[str, str]:
    return TEXTS.get(language, TEXTS["en"])


def default_steps() -> list[dict]:
    return [
        {"title": "", "fields": [{"kind": "email", "required": True}]},
        {"title": "", "fields": [{"kind": "first_name"}]},
    ]


def theme_clean(theme: dict | None) -> dict:
    """The theme with defaults filled in; ValidationError for values that could inject CSS."""
    theme = {**THEME_DEFAULTS, **(theme or {})}
    errors = {}
    for key in ("primary_color", "background_color", "text_color"):
        if not _COLOR_RE.match(str(theme[key])):
            errors[key] = f"{theme[key]!r} is not a colour like #1a2b3c."
    if not _FONT_RE.match(str(theme["font_family"])):
        errors["font_family"] = "Use font names separated by commas."
    try:
        theme["border_radius"] = int(theme["border_radius"])
        if not 0 <= theme["border_radius"] <= 40:
            raise ValueError
    except (TypeError, ValueError):
        errors["border_radius"] = "The corner radius is a number of pixels from 0 to 40."
    theme["button_text"] = str(theme["button_text"] or "")[:60]
    if errors:
        raise ValidationError(errors)
    return {key: theme[key] for key in THEME_DEFAULTS}


def theme_for_display(theme: dict | None) -> dict:
    """The checked theme, or the defaults if a stored value is invalid (saved through the admin
    or an old version): public pages render it inside <style>, unescaped."""
    try:
        return theme_clean(theme)
    except ValidationError:
        return dict(THEME_DEFAULTS)


def steps_clean(steps: Any) -> list[dict]:
    """Check the builder's steps; ValidationError lists every problem with its place."""
    problems: list[str] = []
    if not isinstance(steps, list) or not steps:
        raise ValidationError("A form needs at least one step.")
    if len(steps) > 5:
        problems.append("A form has at most 5 steps.")
    custom = {f.key: f for f in CustomField.objects.all()}
    cleaned_steps: list[dict[str, Any]] = []
    names_seen: set[str] = set()
    for s_index, step in enumerate(steps, start=1):
        if not isinstance(step, dict) or not isinstance(step.get("fields"), list):
            problems.append(f"Step {s_index} is malformed.")
            continue
        fields = []
        for f_index, raw in enumerate(step["fields"], start=1):
            where = f"Step {s_index}, field {f_index}"
            if not isinstance(raw, dict) or raw.get("kind") not in KINDS:
                problems.append(f"{where}: choose what the field asks for.")
                continue
            kind = raw["kind"]
            item = {
                "kind": kind,
                "label": str(raw.get("label") or "")[:200].strip(),
                "help_text": str(raw.get("help_text") or "")[:300].strip(),
                "placeholder": str(raw.get("placeholder") or "")[:100].strip(),
                "required": bool(raw.get("required")) or kind == "email",
            }
            if kind in ("attribute", "hidden"):
                key = str(raw.get("key") or "").strip()
                if not _KEY_RE.match(key):
                    problems.append(f"{where}: the key must be lowercase letters, digits, _ or -.")
                    continue
                if kind == "attribute" and key not in custom:
                    problems.append(f"{where}: there is no custom field {key!r}.")
                    continue
                item["key"] = key
            if kind == "hidden":
                item["param"] = str(raw.get("param") or "").strip()[:50]
                item["value"] = str(raw.get("value") or "").strip()[:200]
                item["required"] = False
            name = field_name(item)
            if name in names_seen:
                problems.append(f"{where}: this field is already in the form.")
                continue
            names_seen.add(name)
            fields.append(item)
        if not fields:
            problems.append(f"Step {s_index} has no field.")
        cleaned_steps.append(
            {"title": str(step.get("title") or "")[:150].strip(), "fields": fields}
        )
    if cleaned_steps and not any(f["kind"] == "email" for f in cleaned_steps[0]["fields"]):
        problems.append("Step 1 must ask for the email address.")
    for s_index, step in enumerate(cleaned_steps[1:], start=2):
        if any(f["kind"] == "email" for f in step["fields"]):
            problems.append(f"Step {s_index}: the email address belongs in step 1.")
    if problems:
        raise ValidationError(problems)
    return cleaned_steps


def consent_notice(form) -> str:
    """The consent text shown next to step 1's button when the form has no consent checkbox
    (then submitting is the agreement); "" otherwise."""
    has_checkbox = any(f["kind"] == "consent" for s in form.steps for f in s["fields"])
    return "" if has_checkbox else form.consent_text


def field_name(item: dict) -> str:
    kind = item["kind"]
    if kind == "attribute":
        return f"attr_{item['key']}"
    if kind == "hidden":
        return f"hidden_{item['key']}"
    return kind


@dataclass
class Field:
    kind: str
    name: str
    label: str
    input: str  # email, text, number, date, checkbox, select, checkboxes, hidden
    required: bool = False
    help_text: str = ""
    placeholder: str = ""
    choices: list[tuple[str, str]] = field(default_factory=list)
    param: str = ""
    value: str = ""
    key: str = ""
    custom: CustomField | None = None

    def public(self) -> dict:
        data = {
            "name": self.name,
            "label": self.label,
            "input": self.input,
            "required": self.required,
            "help_text": self.help_text,
            "placeholder": self.placeholder,
        }
        if self.choices:
            data["choices"] = [[value, label] for value, label in self.choices]
        if self.input == "hidden":
            data.update(param=self.param, value=self.value)
        return data


_INPUT_BY_TYPE = {
    CustomField.Type.TEXT: "text",
    CustomField.Type.NUMBER: "number",
    CustomField.Type.DATE: "date",
    CustomField.Type.BOOLEAN: "checkbox",
    CustomField.Type.CHOICE: "select",
}


def form_layout(form, *, custom: dict | None = None, topics: list | None = None) -> list[dict]:
    """The steps resolved into Field objects: [{"title", "fields": [Field, ...]}]."""
    words = texts(form.language)
    kinds = {item["kind"] for step in form.steps for item in step["fields"]}
    # Only the queries this form needs: the public endpoints call this on every request.
    if custom is None:
        custom = {f.key: f for f in CustomField.objects.all()} if "attribute" in kinds else {}
    if topics is None:
        topics = list(form.topics.all()) if form.pk and "topics" in kinds else []
    layout = []
    for step in form.steps:
        fields = []
        for item in step["fields"]:
            kind = item["kind"]
            common = {
                "kind": kind,
                "name": field_name(item),
                "required": item.get("required", False),
                "help_text": item.get("help_text", ""),
                "placeholder": item.get("placeholder", ""),
            }
            if kind == "email":
                fields.append(
                    Field(label=item.get("label") or words["email"], input="email", **common)
                )
            elif kind in ("first_name", "last_name"):
                fields.append(Field(label=item.get("label") or words[kind], input="text", **common))
            elif kind == "attribute":
                definition = custom.get(item["key"])
                if definition is None:  # the custom field was deleted since: skip it
                    continue
                fields.append(
                    Field(
                        label=item.get("label") or definition.label,
                        input=_INPUT_BY_TYPE.get(definition.type, "text"),
                        choices=[(c, c) for c in definition.choices or []],
                        key=item["key"],
                        custom=definition,
                        **common,
                    )
                )
            elif kind == "topics":
                if not topics:
                    continue
                fields.append(
                    Field(
                        label=item.get("label") or words["topics"],
                        input="checkboxes",
                        choices=[(str(t.pk), t.display_name) for t in topics],
                        **common,
                    )
                )
            elif kind == "consent":
                fields.append(
                    Field(
                        label=item.get("label") or form.consent_text or words["consent"],
                        input="checkbox",
                        **common,
                    )
                )
            elif kind == "hidden":
                fields.append(
                    Field(
                        label=item["key"],
                        input="hidden",
                        param=item.get("param", ""),
                        value=item.get("value", ""),
                        key=item["key"],
                        **common,
                    )
                )
        layout.append({"title": step.get("title", ""), "fields": fields})
    return layout


@dataclass
class StepData:
    """What one step contributes, checked and typed."""

    email: str = ""
    names: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    topic_ids: list[int] | None = None
    consent: bool = False
    hidden: dict[str, str] = field(default_factory=dict)


def _truthy(value) -> bool:
    return str(value or "").strip().lower() in ("1", "on", "true", "yes")


def step_validate(fields: list[Field], data, *, language: str) -> tuple[StepData, dict[str, str]]:
    """(typed values, {field name: error}) for one step's submitted data (a QueryDict)."""
    words = texts(language)
    result = StepData()
    errors: dict[str, str] = {}
    for item in fields:
        if item.input == "checkboxes":
            raw_list = data.getlist(item.name) if hasattr(data, "getlist") else data.get(item.name)
            values = [str(v) for v in (raw_list or [])]
            allowed = {value for value, _ in item.choices}
            chosen = [int(v) for v in values if v in allowed]
            if item.required and not chosen:
                errors[item.name] = words["required"]
            result.topic_ids = chosen
            continue
        raw = data.get(item.name, "")
        raw = "" if raw is None else str(raw)
        if len(raw) > 1000:
            errors[item.name] = words["too_long"]
            continue
        if item.input == "checkbox":
            checked = _truthy(raw)
            if item.required and not checked:
                errors[item.name] = words["required"]
            elif item.kind == "consent":
                result.consent = checked
            elif item.kind == "attribute":
                result.attributes[item.key] = checked
            continue
        value = raw.strip()
        if item.input == "hidden":
            result.hidden[item.key] = value[:200] or item.value
            continue
        if not value:
            if item.required:
                errors[item.name] = words["required"]
            continue
        if item.kind == "email":
            result.email = value
        elif item.kind in ("first_name", "last_name"):
            if len(value) > 150:
                errors[item.name] = words["too_long"]
            else:
                result.names[item.kind] = value
        elif item.kind == "attribute" and item.custom is not None:
            try:
                result.attributes[item.key] = attribute_coerce(field=item.custom, raw=value)
            except ValueError:
                errors[item.name] = {
                    "number": words["not_number"],
                    "date": words["not_date"],
                    "select": words["not_choice"],
                }.get(item.input, words["too_long"])
    return result, errors
